//! A sick database, for the timeout tests: a TCP proxy on loopback that
//! can stop handing the server's answers to the client (a hung server or
//! a peer gone silent: the query is delivered and executed, its answer
//! waits in the proxy), and a way to run an engine call with a bound on
//! how long the test waits for it.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Forwards 127.0.0.1:`port` to 127.0.0.1:`target`. Every thread it
/// starts polls `stop` at least every 50 ms and ends when it is dropped.
pub struct StallProxy {
    pub port: u16,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl StallProxy {
    pub fn start(target: u16) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stalled.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        pump(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            None,
                            &sp,
                        );
                        pump(server, client, Some(st.clone()), &sp);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => return,
                }
            }
        });
        StallProxy {
            port,
            stalled,
            stop,
        }
    }

    /// Stop (`true`) or resume (`false`) handing the server's bytes to the
    /// client; what the server sends meanwhile is delivered on resume.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copy `from` to `to` on a thread; while `stalled` is set, nothing is
/// read from `from`.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    stalled: Option<Arc<AtomicBool>>,
    stop: &Arc<AtomicBool>,
) {
    let stop = stop.clone();
    std::thread::spawn(move || {
        from.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::SeqCst) {
            if stalled.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Run `f` on its own thread and wait at most `limit` for it: its result
/// and how long it took, or `None` when it had not returned (the thread
/// is left to finish on its own).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<(T, Duration)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let r = f();
        let _ = tx.send((r, t0.elapsed()));
    });
    rx.recv_timeout(limit).ok()
}
