//! The HTTP listener of `--metrics-address`: a small [`Router`] (`GET
//! /metrics` today; more read-only endpoints may join it) served by hyper.
//!
//! Why hyper: the listener may be reachable by clients we do not trust, so
//! the HTTP parsing must be a maintained, widely used implementation, and
//! idle or slow clients must cost little and be cut off. hyper's HTTP/1
//! server has a header read timeout and a bounded read buffer, and on a
//! single-threaded tokio runtime (one `metrics-http` thread) a connection
//! costs a task, not a thread. `tiny_http`, the lighter choice, spawns a
//! thread per connection without limit and has no read timeouts, so ten
//! idle connections would still hold ten threads forever. hyper, hyper-util
//! (`TokioIo`, `TokioTimer`) and tokio (`rt`, `net`, `time`) add about a
//! dozen small crates to the lean build; the full build has tokio already
//! (tokio-postgres).
//!
//! Bounds, whatever the clients do:
//! * at most [`MAX_CONNECTIONS`] open connections: a new one closes the
//!   oldest (a scrape takes milliseconds; whoever holds connections open
//!   loses them first), so neither memory nor file descriptors grow and a
//!   scrape still gets through;
//! * the request head must arrive within [`HEADER_TIMEOUT`] and fit in
//!   [`MAX_HEAD`] bytes (hyper answers 431 beyond it), at most
//!   [`MAX_HEADERS`] headers; a request body is never read;
//! * one request per connection (no keep-alive), and a connection lives at
//!   most [`CONNECTION_TIMEOUT`] (a client that does not read its answer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::JoinHandle;

/// Open connections at most.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Time to send the whole request head.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of a connection.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (bytes; hyper's minimum buffer).
pub(crate) const MAX_HEAD: usize = 8192;
/// Most headers in a request.
pub(crate) const MAX_HEADERS: usize = 32;
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Answer {
    /// 200 with `body` of `content_type`.
    pub(crate) fn ok(content_type: &'static str, body: String) -> Self {
        Answer {
            status: 200,
            content_type,
            body,
        }
    }

    fn plain(status: u16, body: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

/// A handler: the query string (without `?`, empty when none) to the
/// answer. It runs on the listener's thread: keep it short.
pub(crate) type Handler = Box<dyn Fn(&str) -> Answer + Send + Sync>;

/// Paths to handlers, all read-only (`GET`, and `HEAD` without the body).
/// An unknown path is 404; another method on a known path is 405.
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<(&'static str, Handler)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.routes.iter().map(|(p, _)| *p).collect();
        f.debug_struct("Router").field("paths", &paths).finish()
    }
}

impl Router {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Answer `GET path` with `handler` (exact path, query string apart).
    pub(crate) fn get(mut self, path: &'static str, handler: Handler) -> Self {
        self.routes.push((path, handler));
        self
    }

    /// The answer to `method path?query`.
    pub(crate) fn answer(&self, method: &Method, path: &str, query: &str) -> Answer {
        let Some((_, handler)) = self.routes.iter().find(|(p, _)| *p == path) else {
            return Answer::plain(404, "Not Found");
        };
        if method == Method::GET || method == Method::HEAD {
            handler(query)
        } else {
            Answer::plain(405, "Method Not Allowed")
        }
    }

    fn respond<B>(&self, req: &Request<B>) -> Response<String> {
        let a = self.answer(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        );
        let mut r = Response::new(a.body);
        *r.status_mut() =
            StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(a.content_type));
        if a.status == 405 {
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        r
    }
}

/// Bind `addr` now (errors are the caller's: they name the address) and
/// serve `router` on a thread of its own until `stop` is set. Returns the
/// bound address (useful with port 0) and the thread.
pub(crate) fn serve(
    addr: &str,
    router: Router,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let sa = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    })?;
    let listener = TcpListener::bind(sa)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let h = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            rt.block_on(accept_loop(listener, Arc::new(router), stop));
            // Open connections are dropped with the runtime.
        })?;
    Ok((local, h))
}

async fn accept_loop(listener: TcpListener, router: Arc<Router>, stop: Arc<AtomicBool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("Metrics endpoint stopped: {e}");
            return;
        }
    };
    // The open connections, oldest first.
    let mut open: VecDeque<JoinHandle<()>> = VecDeque::with_capacity(MAX_CONNECTIONS);
    while !stop.load(Relaxed) {
        let stream = match tokio::time::timeout(POLL, listener.accept()).await {
            Err(_) => continue,
            Ok(Ok((stream, _))) => stream,
            // Out of file descriptors and the like: wait, do not spin.
            Ok(Err(_)) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        open.retain(|c| !c.is_finished());
        if open.len() >= MAX_CONNECTIONS {
            // The oldest has had the longest to send its request: a scrape
            // takes milliseconds, a client that holds connections open
            // loses them first.
            if let Some(oldest) = open.pop_front() {
                oldest.abort();
            }
        }
        let router = Arc::clone(&router);
        open.push_back(tokio::spawn(async move {
            let service = service_fn(move |req| {
                let r = router.respond(&req);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .max_headers(MAX_HEADERS)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // Errors are the client's (reset, timeout, bad request).
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new().get(
            "/metrics",
            Box::new(|q| Answer::ok("text/plain", format!("q={q}"))),
        )
    }

    #[test]
    fn routes_methods_and_queries() {
        let r = router();
        let a = r.answer(&Method::GET, "/metrics", "");
        assert_eq!((a.status, a.body.as_str()), (200, "q="));
        assert_eq!(r.answer(&Method::GET, "/metrics", "x=1").body, "q=x=1");
        assert_eq!(r.answer(&Method::HEAD, "/metrics", "").status, 200);
        assert_eq!(r.answer(&Method::POST, "/metrics", "").status, 405);
        assert_eq!(r.answer(&Method::DELETE, "/metrics", "").status, 405);
        assert_eq!(r.answer(&Method::GET, "/", "").status, 404);
        assert_eq!(r.answer(&Method::GET, "/metrics/", "").status, 404);
        assert_eq!(r.answer(&Method::POST, "/nope", "").status, 404);
    }

    #[test]
    fn a_405_names_the_allowed_methods() {
        let req = Request::post("/metrics").body(()).unwrap();
        let resp = router().respond(&req);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "GET, HEAD");
    }
}
