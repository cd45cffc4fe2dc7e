//! The clients the loopback benchmark compares: what each variant sends and how.

use super::*;

#[derive(Debug, Deserialize, Serialize)]
#[allow(dead_code)]
pub(crate) struct User {
    id: u64,
    name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "bench",
    secret_env = "BENCH_SECRET"
)]
pub(crate) trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;
}

/// The three RFC 9421 headers of one attempt, computed as a hand-written client would with
/// comms' public signing functions: a fresh creation time and random nonce, the signature base,
/// the HMAC, base64.
fn signature_headers(secret: &Secret, url: &reqwest::Url) -> [(HeaderName, HeaderValue); 3] {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).unwrap();
    let nonce = hex::encode(nonce);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let fields = [("content-digest", signing::EMPTY_CONTENT_DIGEST)];
    let message = signing::Message {
        method: "GET",
        authority: &authority,
        path: url.path(),
        query: url.query().unwrap_or(""),
        fields: &fields,
    };
    let params = signing::Params {
        created,
        key_id: "bench",
        nonce: &nonce,
    };
    let base = signing::signature_base(&message, &params);
    [
        (
            signing::CONTENT_DIGEST,
            HeaderValue::from_static(signing::EMPTY_CONTENT_DIGEST),
        ),
        (
            signing::SIGNATURE_INPUT,
            HeaderValue::try_from(signing::signature_input(&message, &params)).unwrap(),
        ),
        (
            signing::SIGNATURE,
            HeaderValue::try_from(signing::signature(secret, &base)).unwrap(),
        ),
    ]
}

/// Signing as a reqwest-middleware layer, below the retry layer so each attempt is re-signed:
/// how a reqwest-middleware stack would do what comms does.
struct SigningMiddleware(Arc<Signer>);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for SigningMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0
            .sign_request(&mut req)
            .map_err(|e| reqwest_middleware::Error::Middleware(e.into()))?;
        next.run(req, extensions).await
    }
}

#[derive(Clone)]
pub(crate) enum Variant {
    Raw(reqwest::Client, String),
    SameBytes(reqwest::Client, String),
    HandSigned(reqwest::Client, reqwest::Url, Arc<Secret>),
    CommsSigned(reqwest::Client, reqwest::Url, Arc<Signer>),
    RawTimeout(reqwest::Client, String),
    Executor(Executor),
    Generated(UsersClient),
    Middleware(reqwest_middleware::ClientWithMiddleware, String),
    MiddlewareSigned(reqwest_middleware::ClientWithMiddleware, String),
    #[cfg(feature = "otel")]
    ByHand(reqwest::Client, String, Arc<crate::otel::ByHand>),
}

impl Variant {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Variant::Raw(..) => "raw reqwest",
            Variant::SameBytes(..) => "reqwest, fixed sig headers",
            Variant::HandSigned(..) => "reqwest + hand signing",
            Variant::CommsSigned(..) => "reqwest + comms signing",
            Variant::RawTimeout(..) => "reqwest + timeout",
            Variant::Executor(_) => "comms::Executor",
            Variant::Generated(_) => "generated client",
            Variant::Middleware(..) => "middleware+retry",
            Variant::MiddlewareSigned(..) => "middleware+retry+signing",
            #[cfg(feature = "otel")]
            Variant::ByHand(..) => "reqwest + otel by hand",
        }
    }

    /// One call: GET /users/1 and decode the JSON body.
    pub(crate) async fn call(&self) {
        let user: User = match self {
            Variant::Raw(client, url) => decode(client.get(url).send()).await,
            Variant::SameBytes(client, url) => {
                // The bytes of a signed call, with nothing computed: what the headers alone
                // cost to write, send and parse.
                let request = client
                    .get(url)
                    .header(
                        signing::CONTENT_DIGEST,
                        HeaderValue::from_static(signing::EMPTY_CONTENT_DIGEST),
                    )
                    .header(
                        signing::SIGNATURE_INPUT,
                        HeaderValue::from_static(concat!(
                            r#"comms=("@method" "@authority" "@path" "@query" "content-digest")"#,
                            r#";created=1790000000;keyid="bench";alg="hmac-sha256""#,
                            r#";nonce="00112233445566778899aabbccddeeff""#
                        )),
                    )
                    .header(
                        signing::SIGNATURE,
                        HeaderValue::from_static(
                            "comms=:ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=:",
                        ),
                    );
                decode(request.send()).await
            }
            Variant::HandSigned(client, url, secret) => {
                let mut request = client.get(url.clone());
                for (name, value) in signature_headers(secret, url) {
                    request = request.header(name, value);
                }
                decode(request.send()).await
            }
            Variant::CommsSigned(client, url, signer) => {
                // The request the executor sends, signed by the executor's own code, with a
                // timeout and nothing else: the gap to the generated client is what the rest
                // of comms (retry, breaker, budget, span, classification) costs.
                let mut request = reqwest::Request::new(http::Method::GET, url.clone());
                signer.sign_request(&mut request).unwrap();
                let sent = client.execute(request);
                tokio::time::timeout(Duration::from_secs(10), decode(sent))
                    .await
                    .unwrap()
            }
            Variant::RawTimeout(client, url) => {
                let sent = client.get(url).send();
                tokio::time::timeout(Duration::from_secs(10), decode(sent))
                    .await
                    .unwrap()
            }
            Variant::Executor(e) => e
                .execute(Call::get("/users").segment(1))
                .await
                .unwrap()
                .json()
                .unwrap(),
            Variant::Generated(c) => c.get_user(1).await.unwrap(),
            Variant::Middleware(client, url) | Variant::MiddlewareSigned(client, url) => {
                decode(client.get(url).send()).await
            }
            #[cfg(feature = "otel")]
            Variant::ByHand(client, url, telemetry) => telemetry.call(client, url).await,
        };
        std::hint::black_box(user);
    }
}

/// Awaits a reqwest-style response, reads its body and decodes the user, as every baseline does.
pub(crate) async fn decode<E: std::fmt::Debug>(
    sent: impl std::future::Future<Output = Result<reqwest::Response, E>>,
) -> User {
    let bytes = sent.await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub(crate) fn variants(addr: SocketAddr) -> Vec<Variant> {
    let base = format!("http://{addr}");
    let url = format!("{base}/users/1");
    // Each variant gets its own pool, configured alike: no redirects, same idle policy.
    let client = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let signer = || {
        Arc::new(Signer::new(
            &base,
            "bench",
            "bench-secret",
            comms::Signing::Rfc9421,
        ))
    };
    let executor = Executor::builder()
        .base_url(&base)
        .service_id("bench")
        .secret("bench-secret")
        .http_client(client())
        .build()
        .unwrap();
    let generated = UsersClient::builder()
        .base_url(&base)
        .secret("bench-secret")
        .http_client(client())
        .build()
        .unwrap();
    let retry = || {
        let policy =
            reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(3);
        reqwest_retry::RetryTransientMiddleware::new_with_policy(policy)
    };
    let middleware = reqwest_middleware::ClientBuilder::new(client())
        .with(retry())
        .build();
    let middleware_signed = reqwest_middleware::ClientBuilder::new(client())
        .with(retry())
        .with(SigningMiddleware(signer()))
        .build();
    vec![
        Variant::Raw(client(), url.clone()),
        Variant::SameBytes(client(), url.clone()),
        Variant::HandSigned(
            client(),
            url.parse().unwrap(),
            Arc::new(Secret::from("bench-secret")),
        ),
        Variant::CommsSigned(client(), url.parse().unwrap(), signer()),
        Variant::RawTimeout(client(), url.clone()),
        Variant::Executor(executor),
        Variant::Generated(generated),
        Variant::Middleware(middleware, url.clone()),
        Variant::MiddlewareSigned(middleware_signed, url.clone()),
        #[cfg(feature = "otel")]
        Variant::ByHand(client(), url, Arc::new(crate::otel::ByHand::new(&addr))),
    ]
}
