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

/// The engine timeout of the timeout tests, and how long a failing call
/// may take with it (generous: the machine is loaded).
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(8);

/// `engine` on `dsn` with two connections and [`TIMEOUT`].
pub fn sick_engine(engine: &str, dsn: &str) -> Arc<dyn pyzor_store::Engine> {
    let mut o = pyzor_store::EngineOptions::new(engine, "/nonexistent").dsn(dsn);
    o.db_connections = 2;
    o.engine_timeout = TIMEOUT;
    pyzor_store::open(&o).unwrap()
}

/// One report of `d`, its record after.
pub fn report(e: &dyn pyzor_store::Engine, d: &str) -> pyzor_store::Result<pyzor_protocol::Record> {
    let mut out = Vec::new();
    e.execute(
        &[pyzor_store::Op::Report(d.as_bytes())],
        pyzor_store::now(),
        &mut out,
    )?;
    match out[0] {
        Some(r) => Ok(r),
        // not read back (a batch of writes only on an SQL engine)
        None => Ok(e
            .get(d.as_bytes())?
            .expect("the reported digest has a record")),
    }
}

/// Run `f(engine)` on a thread; it must fail with `Unavailable` within
/// [`BOUND`].
pub fn fails_in_time<T: std::fmt::Debug + Send + 'static>(
    e: &Arc<dyn pyzor_store::Engine>,
    what: &str,
    f: impl FnOnce(&dyn pyzor_store::Engine) -> pyzor_store::Result<T> + Send + 'static,
) {
    let e = e.clone();
    match within(BOUND, move || f(&*e)) {
        Some((Err(pyzor_store::StoreError::Unavailable(m)), took)) => {
            eprintln!("{what}: failed after {took:?}: {m}")
        }
        Some((other, took)) => panic!("{what}: {other:?} after {took:?}, expected Unavailable"),
        None => panic!("{what}: no answer within {BOUND:?}"),
    }
}
