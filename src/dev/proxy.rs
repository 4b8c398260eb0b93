//! A TCP proxy on loopback that shapes what passes through it, for the runtime's tests: what
//! the phone sends goes at a set rate with a set delay, and the rate, the delay and the server
//! behind it can change while it runs (a network that slows down, a server restarted on
//! another port).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the proxy treats traffic now.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The uplink (client to server), Mbps; `None`: as fast as loopback.
    pub uplink_mbps: Option<f64>,
    /// Added to each chunk the client sends, as a longer round trip would.
    pub delay: Duration,
    /// The port of the server behind it.
    pub target: u16,
}

pub struct Proxy {
    pub port: u16,
    shape: Arc<Mutex<Shape>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to the server on `target`, unshaped, listening on a free loopback port.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shape = Arc::new(Mutex::new(Shape {
            uplink_mbps: None,
            delay: Duration::ZERO,
            target,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shape.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let target = s.lock().unwrap().target;
                        // No server: the client's connection is closed, as a refused one.
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", target)) {
                            connect(client, server, s.clone());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy { port, shape, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Change how traffic is treated from now on.
    pub fn set(&self, change: impl FnOnce(&mut Shape)) {
        change(&mut self.shape.lock().unwrap());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Pump `client`'s bytes to `server` shaped, and `server`'s back as they come.
fn connect(client: TcpStream, server: TcpStream, shape: Arc<Mutex<Shape>>) {
    // Each chunk goes on at once: Nagle's algorithm against the other side's delayed ACK held
    // a request's last chunk for 40 ms.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || pump(client, server, Some(shape)));
    std::thread::spawn(move || pump(server2, client2, None));
}

fn pump(mut from: TcpStream, mut to: TcpStream, shape: Option<Arc<Mutex<Shape>>>) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(shape) = &shape {
            let now = *shape.lock().unwrap();
            let wire = now.uplink_mbps.map_or(Duration::ZERO, |mbps| {
                Duration::from_secs_f64(8.0 * n as f64 / (mbps * 1e6))
            });
            std::thread::sleep(now.delay + wire);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
