//! Loopback servers for the integration tests: they record every request they receive and
//! answer from a script, and can be stopped (every connection dropped) and restarted on the
//! same port to simulate an outage.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The request-line URI (path and query as sent).
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `nonce` parameter of the request's `Signature-Input`.
    pub fn nonce(&self) -> Option<&str> {
        let input = self.header("signature-input")?;
        let after = input.split(";nonce=\"").nth(1)?;
        after.split('"').next()
    }
}

impl Recorded {
    /// Re-signs this request as RFC 9421 with any covered components and parameters, written
    /// out here by hand rather than by comms' signer: for signatures comms would never make
    /// (other labels, components, parameters). `params` is the text after the inner list,
    /// such as `;created=1;keyid="k";nonce="..."`. Replaces `Signature-Input` and `Signature`.
    pub fn sign_as(&mut self, label: &str, components: &[&str], params: &str, secret: &str) {
        use base64::Engine as _;
        use hmac::{KeyInit as _, Mac as _};
        let mut base = String::new();
        for name in components {
            let value = match *name {
                "@method" => self.method.as_str().to_owned(),
                "@authority" => self.header("host").unwrap_or_default().to_owned(),
                "@path" => self.uri.path().to_owned(),
                "@query" => format!("?{}", self.uri.query().unwrap_or("")),
                "@request-target" => self
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                field => self.header(field).unwrap_or_default().trim().to_owned(),
            };
            base.push_str(&format!("\"{name}\": {value}\n"));
        }
        let list: Vec<String> = components.iter().map(|c| format!("\"{c}\"")).collect();
        let member = format!("({}){params}", list.join(" "));
        base.push_str(&format!("\"@signature-params\": {member}"));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(base.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.headers.insert(
            "signature-input",
            HeaderValue::from_str(&format!("{label}={member}")).unwrap(),
        );
        self.headers.insert(
            "signature",
            HeaderValue::from_str(&format!("{label}=:{signature}:")).unwrap(),
        );
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
}

impl Reply {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    /// A 200 response with a JSON body.
    pub fn ok_json(value: serde_json::Value) -> Reply {
        Reply::json(200, value)
    }

    /// A JSON response.
    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = body.into();
        self
    }

    /// Waits before answering.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

/// A recording HTTP/1.1 server on 127.0.0.1.
pub struct TestServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    count: Arc<AtomicUsize>,
    handler: Handler,
    tasks: Option<JoinSet<()>>,
}

impl TestServer {
    /// Starts a server on a free port. `handler` gets each request and its 0-based index.
    pub async fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), handler).await
    }

    /// Starts a server on `addr` (a port known to be free).
    pub async fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let mut server = TestServer {
            addr,
            log: Arc::default(),
            count: Arc::default(),
            handler: Arc::new(handler),
            tasks: None,
        };
        server.restart().await;
        server
    }

    /// A server answering every request with `reply`.
    pub async fn always(reply: Reply) -> TestServer {
        TestServer::start(move |_, _| reply.clone()).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection.
    pub fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }

    /// Listens again on the same port (or a fresh one on first start).
    pub async fn restart(&mut self) {
        self.stop();
        let listener = bind(self.addr).await;
        self.addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let (log, count, handler) = (self.log.clone(), self.count.clone(), self.handler.clone());
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let conns_for_drop = conns.clone();
        tasks.spawn(async move {
            // Dropping this guard (when the accept task is aborted) aborts every connection.
            let _guard = AbortOnDrop(conns_for_drop);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, count, handler) = (log.clone(), count.clone(), handler.clone());
                conns.lock().unwrap().spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (log, count, handler) = (log.clone(), count.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let recorded = Recorded {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                            };
                            let index = count.fetch_add(1, Ordering::SeqCst);
                            log.lock().unwrap().push(recorded.clone());
                            let reply = handler(&recorded, index);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = hyper::Response::new(Full::new(reply.body));
                            *response.status_mut() =
                                http::StatusCode::from_u16(reply.status).unwrap();
                            for (name, value) in reply.headers {
                                response.headers_mut().append(
                                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                    http::HeaderValue::from_str(&value).unwrap(),
                                );
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.tasks = Some(tasks);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct AbortOnDrop(Arc<Mutex<JoinSet<()>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.abort_all();
        }
    }
}

async fn bind(addr: SocketAddr) -> TcpListener {
    // A just-closed port can take a moment to be free again.
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TcpListener::bind(addr).await.expect("bind test server")
}

/// An address on which nothing listens (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Retries with millisecond backoff and no budget, so tests count attempts quickly.
pub fn fast_retry() -> comms::RetryConfig {
    comms::RetryConfig::default()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .no_budget()
}

/// Installs a tracing subscriber once, honouring `RUST_LOG`, for debugging test runs.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The test vectors, read from this crate's `vectors/` folder.
pub fn vectors(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// What a [`RawServer`] does with one connection.
#[derive(Clone, Debug)]
pub enum RawAction {
    /// Reads the request head, then closes without answering.
    CloseAfterRequest,
    /// Reads the request head, writes these bytes as they are, then closes.
    Write(Vec<u8>),
    /// Reads the request head, writes these bytes, then sends nothing more and keeps the
    /// connection open until the client closes it (10 s at most, so that a client that never
    /// gives up fails its test instead of hanging it): a response that stalls part way.
    WriteThenStall(Vec<u8>),
}

/// A TCP server that speaks just enough HTTP to misbehave: it counts connections and answers
/// each from a script by index.
pub struct RawServer {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    /// Starts on a free port.
    pub async fn start(script: impl Fn(usize) -> RawAction + Send + Sync + 'static) -> RawServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = script.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    // Read up to the end of the head (and whatever body came with it).
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let index = counter.fetch_add(1, Ordering::SeqCst);
                    match script(index) {
                        RawAction::CloseAfterRequest => {}
                        RawAction::Write(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.flush().await;
                        }
                        RawAction::WriteThenStall(bytes) => {
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.flush().await;
                            let drained =
                                async { while let Ok(1..) = stream.read(&mut chunk).await {} };
                            let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        RawServer { addr, count, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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
    Malformed(&'static [u8]),
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
            Fault::Malformed(bytes) => bytes.to_vec(),
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

/// A `redis-server` this test owns (so it can kill and restart it), on a free loopback port.
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one, or explains why it cannot: `Err` outside CI means "skip", and inside CI
    /// (where `.ci/run` installs `redis-server`) a missing server panics, so nothing is skipped
    /// silently there.
    pub async fn start() -> Result<RedisServer, String> {
        let port = dead_addr().await.port();
        let mut server = RedisServer { port, child: None };
        match server.spawn().await {
            Ok(()) => Ok(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("redis-server is required in CI ({why}); .ci/run installs it")
            }
            Err(why) => Err(why),
        }
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let binary =
            std::env::var("COMMS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = std::process::Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `{binary}`: {e}"))?;
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("redis-server did not listen on port {}", self.port))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (every connection drops).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await.expect("restart redis-server");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether an error is of one variant.
pub type IsVariant = fn(&comms::Error) -> bool;

/// Every way a server builds an error, by name: the error, and the variant a client must
/// receive it as (the `message` too).
pub fn built_errors() -> Vec<(&'static str, comms::Error, IsVariant)> {
    use comms::Error;
    use http::StatusCode;
    vec![
        ("bad_request", Error::bad_request("bad id `x`"), |e| {
            matches!(e, Error::BadRequest(_))
        }),
        ("unauthorized", Error::unauthorized("who are you"), |e| {
            matches!(e, Error::Unauthorized(_))
        }),
        ("forbidden", Error::forbidden("not yours"), |e| {
            matches!(e, Error::Forbidden(_))
        }),
        ("not_found", Error::not_found("no user 7"), |e| {
            matches!(e, Error::NotFound(_))
        }),
        ("conflict", Error::conflict("user 7 exists"), |e| {
            matches!(e, Error::Conflict(_))
        }),
        (
            "unprocessable",
            Error::unprocessable("name is empty"),
            |e| matches!(e, Error::UnprocessableEntity(_)),
        ),
        (
            "too_many_requests",
            Error::too_many_requests("slow down"),
            |e| matches!(e, Error::TooManyRequests(_)),
        ),
        ("internal", Error::internal("the database is gone"), |e| {
            matches!(e, Error::Server(_))
        }),
        (
            "teapot",
            Error::from_status(StatusCode::IM_A_TEAPOT, "short and stout"),
            |e| matches!(e, Error::Status(_)),
        ),
        (
            "unavailable",
            Error::from_status(StatusCode::SERVICE_UNAVAILABLE, "draining"),
            |e| matches!(e, Error::Server(_)),
        ),
    ]
}

/// The error [`built_errors`] names `kind`.
pub fn built_error(kind: &str) -> comms::Error {
    built_errors()
        .into_iter()
        .find(|(name, ..)| *name == kind)
        .map(|(_, e, _)| e)
        .unwrap_or_else(|| panic!("no error named {kind}"))
}
