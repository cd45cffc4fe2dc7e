//! The generated server's HTTP over raw TCP, as no client library would write it: path values
//! no comms client sends, a method's 401 and informational statuses, and what an unsigned
//! prober learns behind a `VerifyLayer`.

use std::time::Duration;

use comms::http::{Method, StatusCode};

use comms_tests::raw_exchange;

use super::*;

async fn once(url: &str, request: &str) -> String {
    raw_exchange(url, request.as_bytes(), Duration::from_secs(5)).await
}

/// A header's value in an answer's head.
fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap();
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// A bodiless GET of `target`, signed by `billing`, closing its connection.
fn signed_get(url: &str, target: &str) -> Vec<u8> {
    signed(Method::GET, url, target)
}

/// A bodiless request of `target`, signed by `billing`, closing its connection.
fn signed(method: Method, url: &str, target: &str) -> Vec<u8> {
    let authority = url.trim_start_matches("http://");
    let mut head = comms_tests::Recorded::head(method, target, authority, b"");
    head.sign_now("billing", SECRET, &[]);
    head.head_bytes(target)
}

#[tokio::test]
async fn a_head_methods_answer_claims_no_length_it_does_not_know() {
    // RFC 9110 §8.6: a HEAD answer's `Content-Length`, when sent, is the one its GET would
    // send. A `#[head]` method answers with no body, so no length at all, not `0`.
    let (_, _, url) = pair().await;
    let wait = Duration::from_secs(5);
    let answer = raw_exchange(&url, &signed(Method::HEAD, &url, "/users/42"), wait).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(header(&answer, "x-exists"), Some("42"), "{answer}");
    assert_eq!(header(&answer, "content-length"), None, "{answer}");
    assert_eq!(header(&answer, "transfer-encoding"), None, "{answer}");
    // A HEAD of a GET route is answered by the GET's method: with the GET's length.
    let get = raw_exchange(&url, &signed(Method::GET, &url, "/raw"), wait).await;
    assert_eq!(header(&get, "content-length"), Some("6"), "{get}");
    let head = raw_exchange(&url, &signed(Method::HEAD, &url, "/raw"), wait).await;
    assert_eq!(status(&head), 201, "{head}");
    assert_eq!(header(&head, "content-length"), Some("6"), "{head}");
    assert_eq!(body(&head), "", "{head}");
}

#[tokio::test]
async fn a_path_value_no_client_sends_is_a_400_and_reaches_no_method() {
    // A segment of `.` or `..` (RFC 3986 climbs with it), and a trailing value that, decoded,
    // has one or starts with `/` (`Path::join` takes it for a root): signed, yet refused.
    let (_, client, url) = pair().await;
    for target in [
        "/orgs/../files/x",
        "/orgs/%2E%2E/files/x",
        "/orgs/./files/x",
        "/orgs/o/files/a/../../../etc/passwd",
        "/orgs/o/files/%2E%2E/%2e%2E/etc/passwd",
        "/orgs/o/files/a%2F..%2F..%2Fsecret",
        "/orgs/o/files/%2Fetc/passwd",
        "/orgs/o/files//etc/passwd",
    ] {
        let answer = raw_exchange(&url, &signed_get(&url, target), Duration::from_secs(5)).await;
        assert_eq!(status(&answer), 400, "{target}: {answer}");
        assert!(
            body(&answer).contains("path parameter"),
            "{target}: {answer}"
        );
    }
    // What a comms client sends still round-trips: dots inside a name, empty inner segments,
    // a `/` that was a value's own in a plain segment.
    for (org, path) in [("o", "a//b"), ("o", "x/"), ("o", "..x/y.."), ("a/b", "c")] {
        let got = client.file(org, path).await.unwrap();
        assert_eq!(got, format!("{org}|{path}"));
    }
    // A trailing value with its `/` sent encoded (Python's `quote(key, safe="")`) is the same
    // value, and served.
    let answer = raw_exchange(
        &url,
        &signed_get(&url, "/orgs/o/files/docs%2Fa.txt"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(body(&answer), r#""o|docs/a.txt""#);
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Probe {
    #[get("/status/<code>")]
    async fn status(&self, code: u16) -> Result<(), Error>;

    #[get("/answer/<code>")]
    async fn answer(&self, code: u16) -> Result<comms::Response, Error>;
}

#[derive(Clone)]
struct ProbeImpl;

impl Probe for ProbeImpl {
    async fn status(&self, code: u16) -> Result<(), Error> {
        Err(Error::from_status(
            StatusCode::from_u16(code).unwrap(),
            "said so",
        ))
    }

    async fn answer(&self, code: u16) -> Result<comms::Response, Error> {
        comms::Response::builder(StatusCode::from_u16(code).unwrap())
            .header("content-type", "text/plain")
            .body("hello")
            .build()
    }
}

async fn probe() -> String {
    serve(ProbeServer::new(ProbeImpl).unverified().into_router()).await
}

#[tokio::test]
async fn a_methods_401_names_the_scheme() {
    // RFC 9110 §15.5.2: a 401 sends `WWW-Authenticate`, as the server's own refusal does.
    let url = probe().await;
    let answer = once(
        &url,
        "GET /status/401 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), 401, "{answer}");
    assert_eq!(header(&answer, "www-authenticate"), Some("Signature"));
    assert_eq!(body(&answer), r#"{"message":"said so"}"#);
}

#[tokio::test]
async fn an_informational_status_from_a_method_is_a_500_and_the_connection_serves_on() {
    // A 1xx is no final answer: hyper would close the connection (the pipelined request after
    // it lost) or send a 101 without `Upgrade`.
    let url = probe().await;
    for code in [100, 101, 103] {
        let answer = raw_exchange(
            &url,
            format!(
                "GET /answer/{code} HTTP/1.1\r\nhost: x\r\n\r\n\
                 GET /answer/200 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
            Duration::from_secs(3),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{code}: {answer:?}");
        assert!(answer.contains("internal error"), "{code}: {answer:?}");
        assert!(answer.ends_with("hello"), "{code}: {answer:?}");
    }
}

#[tokio::test]
async fn behind_a_verify_layer_an_unsigned_prober_cannot_tell_routes_apart() {
    // Alone, a generated server's router answers a path it does not have (404) or a verb its
    // path does not serve (405) before any signature is checked; behind a layer with the same
    // verifier, every unsigned request is refused alike.
    let verifier = Verifier::new().service("billing", SECRET);
    let url = serve(
        DirectoryServer::new(DirectoryImpl::default())
            .verifier(verifier.clone())
            .into_router()
            .layer(comms::verify::VerifyLayer::new(verifier)),
    )
    .await;
    let known = once(
        &url,
        "GET /users/5 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let unknown = once(
        &url,
        "GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let wrong_verb = once(
        &url,
        "POST /users/5 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        [status(&known), status(&unknown), status(&wrong_verb)],
        [401, 401, 401]
    );
    // And a signed request still reaches its method through both.
    let answer = raw_exchange(&url, &signed_get(&url, "/users/5"), Duration::from_secs(5)).await;
    assert_eq!(status(&answer), 200, "{answer}");
}
