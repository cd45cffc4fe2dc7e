//! [`FaultServer`]: an HTTP/1.1 server written on raw TCP, so that it can fail the way real
//! servers and networks do: resets, truncated or stalled bodies, garbage, hangs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::task::JoinSet;

use crate::{Recorded, Reply};

/// What a [`FaultServer`] does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers normally (after the reply's delay), keeping the connection open.
    Reply(Reply),
    /// Closes the connection before writing anything.
    ResetBeforeHead,
    /// Writes a 200 head announcing a body, then closes.
    ResetAfterHead,
    /// Writes a 200 head announcing 100 bytes, sends 5, then closes.
    TruncatedBody,
    /// Writes these bytes instead of a response, then closes.
    Raw(Bytes),
    /// Writes these bytes, then sends nothing more and keeps the connection open until the
    /// client closes it (10 s at most, so that a client that never gives up fails its test
    /// instead of hanging it): a response that stalls part way.
    RawThenStall(Bytes),
    /// Never answers (until the client gives up).
    Hang,
}

type Script = Arc<dyn Fn(&Recorded, usize) -> Fault + Send + Sync>;

/// An HTTP/1.1 server written on raw TCP so that it can fail in every way a real one does: each
/// request is recorded, then answered (keep-alive) or sabotaged by a script.
pub struct FaultServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    count: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    /// Starts on a free port; `script` gets each request and its 0-based index.
    pub async fn start(
        script: impl Fn(&Recorded, usize) -> Fault + Send + Sync + 'static,
    ) -> FaultServer {
        let listener = crate::fresh_listener().await;
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let count: Arc<AtomicUsize> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let script: Script = Arc::new(script);
        let (l, c, n) = (log.clone(), count.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                n.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve_faulty(stream, l.clone(), c.clone(), script.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        FaultServer {
            addr,
            log,
            count,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_faulty(
    mut stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Recorded>>>,
    count: Arc<AtomicUsize>,
    script: Script,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Read one request: head, then as many body bytes as Content-Length says.
        let (recorded, used) = loop {
            if let Some(parsed) = parse_request(&buf) {
                match parsed {
                    Ok(done) => break done,
                    Err(()) => return,
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..used);
        let index = count.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push(recorded.clone());
        let bytes: Vec<u8> = match script(&recorded, index) {
            Fault::Reply(reply) => {
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                let status = http::StatusCode::from_u16(reply.status).unwrap();
                let mut out = format!(
                    "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("Unknown"),
                    reply.body.len()
                );
                for (name, value) in &reply.headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                let mut out = out.into_bytes();
                if recorded.method != Method::HEAD {
                    out.extend_from_slice(&reply.body);
                }
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                continue;
            }
            Fault::ResetBeforeHead => return,
            Fault::ResetAfterHead => b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n".to_vec(),
            Fault::TruncatedBody => b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort".to_vec(),
            Fault::Raw(bytes) => bytes.to_vec(),
            Fault::RawThenStall(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
                let drained = async { while let Ok(1..) = stream.read(&mut chunk).await {} };
                let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
                return;
            }
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        let _ = stream.write_all(&bytes).await;
        let _ = stream.flush().await;
        return;
    }
}

/// `None`: incomplete. `Some(Err)`: unparseable. `Some(Ok)`: a request and the bytes it used.
fn parse_request(buf: &[u8]) -> Option<Result<(Recorded, usize), ()>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Err(())),
    };
    let mut map = HeaderMap::new();
    let mut length = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) {
            map.append(name, value);
        }
    }
    if buf.len() < head_len + length {
        return None;
    }
    let recorded = Recorded {
        method: Method::from_bytes(req.method?.as_bytes()).ok()?,
        uri: req.path?.parse().ok()?,
        headers: map,
        body: Bytes::copy_from_slice(&buf[head_len..head_len + length]),
    };
    Some(Ok((recorded, head_len + length)))
}
