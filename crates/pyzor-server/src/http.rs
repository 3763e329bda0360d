//! The HTTP listener of `--http-address` (alias `--metrics-address`): a
//! small [`Router`] served by hyper on threads of its own. It serves `GET
//! /metrics` always, the read-only lookup API ([`api`]) when `HttpApi` is
//! on and the whitelist-request page ([`page`]) when `WhitelistRequests`
//! is on (docs/server.md, "The HTTP listener"; docs/security.md, "The HTTP
//! surface").
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
//!   [`MAX_HEADERS`] headers; a body is read only on a route that takes
//!   one, and only up to that route's bound (413 beyond it, refused from
//!   `Content-Length` before reading when it says so);
//! * handlers that read the engine or digest a message run on at most
//!   [`BLOCKING_THREADS`] threads of their own (tokio's blocking pool),
//!   all the listener's threads at nice [`HTTP_NICE`] (the workers keep
//!   the CPU when both want it), so
//!   a slow database never holds the accept loop, and the UDP workers
//!   never wait for the listener: it shares nothing with them but the
//!   engine (which each engine guards with its own timeouts) and the
//!   counters;
//! * one request per connection (no keep-alive), and a connection lives at
//!   most [`CONNECTION_TIMEOUT`] (a client that does not read its answer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::task::JoinHandle;

pub(crate) mod api;
mod csrf;
mod guard;
mod html;
pub(crate) mod page;

pub(crate) use csrf::Csrf;
pub(crate) use guard::Guard;

/// Open connections at most.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Time to send the whole request head.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of a connection (the body included).
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (bytes; hyper's minimum buffer).
pub(crate) const MAX_HEAD: usize = 8192;
/// Most headers in a request.
pub(crate) const MAX_HEADERS: usize = 32;
/// Threads that run the handlers which may wait (engine reads, digests).
pub(crate) const BLOCKING_THREADS: usize = 2;
/// The nice value of the listener's threads: under CPU contention the
/// kernel gives the UDP workers (nice 0) about nine times their share.
pub(crate) const HTTP_NICE: libc::c_int = 10;
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// The headers of every answer: nothing may be loaded from elsewhere or
/// run (the page's one stylesheet is `/style.css`), no framing, no type
/// sniffing, no caching, and the Referer only to this origin (so that
/// the page's own form posts carry `Origin`/`Referer`, see `csrf`).
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// A request as a handler sees it.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    /// The path, without the query string (no route reads one).
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    /// The connection's source address.
    pub(crate) peer: IpAddr,
    /// The body (empty on routes that take none).
    pub(crate) body: Vec<u8>,
}

impl HttpRequest {
    /// A header's value as text (`None` when absent or not visible ASCII).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    /// Headers besides the content type and [`SECURITY_HEADERS`].
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// 200 with `body` of `content_type`.
    pub(crate) fn ok(content_type: &'static str, body: String) -> Self {
        Answer {
            status: 200,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// `status` with a one-line plain text `body`.
    pub(crate) fn plain(status: u16, body: &str) -> Self {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            headers: Vec::new(),
        }
    }

    /// `status` with a JSON `body`.
    pub(crate) fn json(status: u16, body: &serde_json::Value) -> Self {
        Answer {
            status,
            content_type: "application/json",
            body: format!("{body}\n"),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn into_response(self) -> Response<String> {
        let mut r = Response::new(self.body);
        *r.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in SECURITY_HEADERS {
            h.insert(name, HeaderValue::from_static(value));
        }
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                h.insert(n, v);
            }
        }
        r
    }
}

/// A handler: the request to the answer.
pub(crate) type Handler = Box<dyn Fn(&HttpRequest) -> Answer + Send + Sync>;

/// One route: a method on a path (or on every path under a prefix).
struct Route {
    method: Method,
    path: &'static str,
    prefix: bool,
    /// Largest body read (0: none is read).
    body_limit: usize,
    /// Run on a blocking thread (engine reads, digests).
    blocking: bool,
    handler: Handler,
}

impl Route {
    /// `method` on exactly `path`, no body, on the listener's thread.
    fn new(method: Method, path: &'static str, handler: Handler) -> Self {
        Route {
            method,
            path,
            prefix: false,
            body_limit: 0,
            blocking: false,
            handler,
        }
    }

    fn matches(&self, path: &str) -> bool {
        if self.prefix {
            path.starts_with(self.path)
        } else {
            path == self.path
        }
    }
}

/// Paths to handlers. An unknown path is 404; another method on a known
/// path is 405 (with `Allow`); `HEAD` is answered as `GET` (hyper sends
/// no body).
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{} {}{}", r.method, r.path, if r.prefix { "*" } else { "" }))
            .collect();
        f.debug_struct("Router").field("routes", &paths).finish()
    }
}

impl Router {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Answer `GET path` with `handler` on the listener's thread: for
    /// answers that need neither the engine nor much work.
    pub(crate) fn get(self, path: &'static str, handler: Handler) -> Self {
        self.add(Route::new(Method::GET, path, handler))
    }

    /// Answer `GET` on every path that starts with `prefix`, on a blocking
    /// thread.
    pub(crate) fn get_under(self, prefix: &'static str, handler: Handler) -> Self {
        self.add(Route {
            prefix: true,
            blocking: true,
            ..Route::new(Method::GET, prefix, handler)
        })
    }

    /// Answer `POST path` with a body of at most `limit` bytes, on a
    /// blocking thread.
    pub(crate) fn post(self, path: &'static str, limit: usize, handler: Handler) -> Self {
        self.add(Route {
            body_limit: limit,
            blocking: true,
            ..Route::new(Method::POST, path, handler)
        })
    }

    fn add(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The route for `method path`, or the answer when there is none.
    fn find(&self, method: &Method, path: &str) -> Result<usize, Answer> {
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut allowed: Vec<&str> = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !r.matches(path) {
                continue;
            }
            if r.method == wanted {
                return Ok(i);
            }
            allowed.push(r.method.as_str());
            if r.method == Method::GET {
                allowed.push("HEAD");
            }
        }
        if allowed.is_empty() {
            return Err(Answer::plain(404, "Not Found"));
        }
        Err(Answer::plain(405, "Method Not Allowed").with_header("allow", allowed.join(", ")))
    }

    /// The answer to a request whose body is already read (tests; the
    /// listener uses [`answer_request`]).
    #[cfg(test)]
    pub(crate) fn answer(&self, method: &Method, req: &HttpRequest) -> Answer {
        match self.find(method, &req.path) {
            Ok(i) => {
                let r = &self.routes[i];
                if req.body.len() > r.body_limit {
                    return too_large(r.body_limit);
                }
                (r.handler)(req)
            }
            Err(a) => a,
        }
    }
}

fn too_large(limit: usize) -> Answer {
    Answer::plain(413, &format!("Payload Too Large: at most {limit} bytes"))
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    /// The client broke off or sent malformed chunks.
    Broken,
}

/// Read `body` up to `limit` bytes.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// One request from `peer` to its answer.
async fn answer_request(router: Arc<Router>, req: Request<Incoming>, peer: IpAddr) -> Answer {
    let (parts, body) = req.into_parts();
    let i = match router.find(&parts.method, parts.uri.path()) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let route = &router.routes[i];
    let body = if route.body_limit == 0 {
        Vec::new()
    } else {
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > route.body_limit as u64) {
            return too_large(route.body_limit);
        }
        match read_body(body, route.body_limit).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return too_large(route.body_limit),
            Err(BodyError::Broken) => return Answer::plain(400, "Bad Request: broken body"),
        }
    };
    let req = HttpRequest {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        peer,
        body,
    };
    if !route.blocking {
        return (route.handler)(&req);
    }
    let router = Arc::clone(&router);
    tokio::task::spawn_blocking(move || (router.routes[i].handler)(&req))
        .await
        .unwrap_or_else(|_| Answer::plain(500, "Internal Server Error"))
}

/// Bind `addr` now (errors are the caller's: they name the address) and
/// serve `router` on a thread of its own (and at most
/// [`BLOCKING_THREADS`] for its blocking handlers) until `stop` is set.
/// Returns the bound address (useful with port 0) and the thread.
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
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("http-handler")
        .on_thread_start(lower_priority)
        .build()?;
    let h = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            lower_priority();
            rt.block_on(accept_loop(listener, Arc::new(router), stop));
            // Open connections are dropped with the runtime; handlers
            // running on the blocking threads are waited for.
        })?;
    Ok((local, h))
}

/// Give the calling thread (only it: Linux keeps a nice value per
/// thread) the nice value [`HTTP_NICE`], so that HTTP work yields the CPU
/// to the UDP workers. A refusal (a seccomp filter) leaves it as it is.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread; no memory is passed.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HTTP_NICE);
    }
}

async fn accept_loop(listener: TcpListener, router: Arc<Router>, stop: Arc<AtomicBool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("HTTP listener stopped: {e}");
            return;
        }
    };
    // The open connections, oldest first.
    let mut open: VecDeque<JoinHandle<()>> = VecDeque::with_capacity(MAX_CONNECTIONS);
    while !stop.load(Relaxed) {
        let (stream, peer) = match tokio::time::timeout(POLL, listener.accept()).await {
            Err(_) => continue,
            Ok(Ok(accepted)) => accepted,
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
        let peer = peer.ip().to_canonical();
        open.push_back(tokio::spawn(async move {
            let service = service_fn(move |req| {
                let router = Arc::clone(&router);
                async move {
                    Ok::<_, Infallible>(answer_request(router, req, peer).await.into_response())
                }
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
pub(crate) mod tests {
    use hyper::header::ALLOW;

    use super::*;

    /// A request for `path` from 192.0.2.1.
    pub(crate) fn request(path: &str, body: &[u8]) -> HttpRequest {
        HttpRequest {
            path: path.into(),
            headers: HeaderMap::new(),
            peer: "192.0.2.1".parse().unwrap(),
            body: body.to_vec(),
        }
    }

    fn router() -> Router {
        Router::new()
            .get(
                "/metrics",
                Box::new(|_| Answer::ok("text/plain", "m".into())),
            )
            .post(
                "/v1/explain",
                4,
                Box::new(|r| Answer::ok("text/plain", format!("{} bytes", r.body.len()))),
            )
            .get_under(
                "/v1/digests/",
                Box::new(|r| Answer::ok("text/plain", r.path.clone())),
            )
    }

    #[test]
    fn routes_methods_prefixes_and_bodies() {
        let r = router();
        let go = |m: Method, path: &str, body: &[u8]| r.answer(&m, &request(path, body));
        let a = go(Method::GET, "/metrics", b"");
        assert_eq!((a.status, a.body.as_str()), (200, "m"));
        assert_eq!(go(Method::HEAD, "/metrics", b"").status, 200);
        assert_eq!(go(Method::POST, "/metrics", b"").status, 405);
        assert_eq!(go(Method::DELETE, "/metrics", b"").status, 405);
        assert_eq!(go(Method::GET, "/", b"").status, 404);
        assert_eq!(go(Method::GET, "/metrics/", b"").status, 404);
        assert_eq!(go(Method::POST, "/nope", b"").status, 404);
        let a = go(Method::GET, "/v1/digests/abc", b"");
        assert_eq!((a.status, a.body.as_str()), (200, "/v1/digests/abc"));
        assert_eq!(go(Method::GET, "/v1/digests", b"").status, 404);
        let a = go(Method::POST, "/v1/explain", b"1234");
        assert_eq!((a.status, a.body.as_str()), (200, "4 bytes"));
        assert_eq!(go(Method::POST, "/v1/explain", b"12345").status, 413);
    }

    #[test]
    fn a_405_names_the_allowed_methods_and_every_answer_is_locked_down() {
        let r = router();
        let resp = r
            .answer(&Method::POST, &request("/metrics", b""))
            .into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "GET, HEAD");
        let resp = r
            .answer(&Method::GET, &request("/v1/explain", b""))
            .into_response();
        assert_eq!(resp.headers()[ALLOW], "POST");
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(resp.headers()[name], value);
        }
    }

    /// Handlers and the accept loop run at nice HTTP_NICE (or lower
    /// priority still, if the test itself runs niced).
    #[test]
    fn the_listener_threads_yield_to_the_workers() {
        use std::io::{Read, Write};
        let nice = || {
            // SAFETY: plain syscall about the calling thread.
            let n = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            Answer::ok("text/plain", n.to_string())
        };
        let router = Router::new()
            .get("/inline", Box::new(move |_| nice()))
            .get_under("/blocking", Box::new(move |_| nice()));
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, h) = serve("127.0.0.1:0", router, Arc::clone(&stop)).unwrap();
        for path in ["/inline", "/blocking"] {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                c,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            let n: i32 = out
                .rsplit("\r\n\r\n")
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(n >= HTTP_NICE, "{path}: nice {n}");
        }
        stop.store(true, Relaxed);
        h.join().unwrap();
    }
}
