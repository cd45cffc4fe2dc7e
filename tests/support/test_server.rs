//! [`TestServer`]: a recording hyper server, stoppable and restartable on its port.

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
    /// A request head written by hand, for [`sign_as`](Recorded::sign_as) to sign: `method` to
    /// `path` at `authority` (its `Host`), with the `Content-Digest` of `body`, which it does
    /// not carry itself.
    pub fn head(method: Method, path: &str, authority: &str, body: &[u8]) -> Recorded {
        let mut head = Recorded {
            method,
            uri: path.parse().expect("a request path"),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        head.headers.insert(
            "host",
            HeaderValue::from_str(authority).expect("an authority"),
        );
        head.headers.insert(
            "content-digest",
            HeaderValue::from_str(&comms::signing::content_digest(body)).expect("a digest"),
        );
        head
    }

    /// Signs this request now as `key_id` with `secret` (label `comms`, `alg`, a nonce of its
    /// own), covering the components the profile requires, then `extra`.
    pub fn sign_now(&mut self, key_id: &str, secret: &str, extra: &[&str]) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let nonce = format!("{created:x}{:024x}", NEXT.fetch_add(1, Ordering::SeqCst));
        let params =
            format!(r#";created={created};keyid="{key_id}";alg="hmac-sha256";nonce="{nonce}""#);
        let required = ["@method", "@authority", "@path", "@query", "content-digest"];
        self.sign_as("comms", &[&required[..], extra].concat(), &params, secret);
    }

    /// Its head as an HTTP/1.1 client would write it, with `target` on the request line (which
    /// a client library would not let a test choose: authority-form, absolute-form, dot
    /// segments) and `Connection: close`; no body.
    pub fn head_bytes(&self, target: &str) -> Vec<u8> {
        let mut bytes = format!("{} {target} HTTP/1.1\r\n", self.method).into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"connection: close\r\n\r\n");
        bytes
    }

    /// Sends this request as it is, its `Host` too, to the server at `base`, with `body`,
    /// and gives the answer's status and text.
    pub async fn send_to(&self, base: &str, body: &[u8]) -> (u16, String) {
        let request = reqwest::Client::new()
            .request(self.method.clone(), format!("{base}{}", self.uri))
            .headers(self.headers.clone());
        let response = request.body(body.to_vec()).send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

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
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) delay: Duration,
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
    if addr.port() == 0 {
        return crate::fresh_listener().await;
    }
    // A just-closed port can take a moment to be free again.
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TcpListener::bind(addr).await.expect("bind test server")
}
