//! Interop with independent RFC 9421 implementations, both ways: requests signed by Python's
//! `requests-http-signature` are verified by a comms service, and requests a generated comms
//! client sends are verified by Python's `http-message-signatures` and by the Rust `httpsig`
//! crate. Tampered and replayed requests are refused on each side.
//!
//! The Python side runs in the virtualenv `tests/interop/venv.sh` builds from PyPI (once; CI
//! builds it before the tests).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use axum::Router;
use axum::routing::{get, put};
use base64::Engine as _;
use bytes::Bytes;
use comms::verify::{Verifier, VerifyLayer};
use comms::{BreakerConfig, Error, RetryConfig, service_client};
use comms_tests::{Recorded, Reply, TestServer, serve};
use http_body_util::Full;
use httpsig_hyper::prelude::{AlgorithmName, SharedKey, VerifyingKey as _};
use httpsig_hyper::{
    ContentDigest as _, MessageSignature as _, MessageSignatureReq as _, RequestContentDigest as _,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const SECRET: &str = "interop-secret";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The virtualenv's python, built on first use.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("tests/interop/venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs tests/interop/venv.sh");
        assert!(out.status.success(), "venv.sh failed");
        let text = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            text.lines()
                .last()
                .expect("venv.sh prints the python")
                .trim(),
        )
    })
}

/// Runs an interop script with `args` and `stdin`, and returns its JSON lines.
fn run_script(script: &str, args: &[&str], stdin: &str) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(root().join("tests/interop").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the venv's python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} failed: {:?}", out.status);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_signed_in_python_are_verified_by_a_comms_service() {
    let verifier = Verifier::new().service("billing", SECRET);
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "listed" }).post(|| async { "created" }),
        )
        .route("/items/{id}", put(|| async { "replaced" }))
        .layer(VerifyLayer::new(verifier.clone()));
    let url = serve(app).await;
    let lines = tokio::task::spawn_blocking(move || {
        run_script(
            "sign_requests.py",
            &[&url, "billing", SECRET, "--mode", "all"],
            "",
        )
    })
    .await
    .unwrap();
    let names: Vec<&str> = lines.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "get-query",
            "post-json",
            "put-header",
            "tampered-body",
            "tampered-body-and-digest",
            "tampered-path",
            "tampered-query",
            "tampered-header",
            "replay-first",
            "replay-second",
        ]
    );
    for line in &lines {
        let status = line["status"].as_u64().unwrap();
        match line["expect"].as_str().unwrap() {
            "accepted" => assert_eq!(status, 200, "{line}"),
            "refused" => assert_eq!(status, 401, "{line}"),
            other => panic!("{other}"),
        }
    }
    // The accepted ones were signed under billing's key.
    let usage = verifier.key_usage();
    assert_eq!(usage[0].requests, 4, "{usage:?}");
}

/// A comms service behind `verifier` that answers every `/items` route, and what
/// `sign_requests.py --mode <mode>` printed of each request it sent there: its name, the
/// status it got and what the profile expects of it.
async fn python_signed(mode: &str, verifier: Verifier) -> Vec<(String, u64, String)> {
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "listed" }).post(|| async { "created" }),
        )
        .route("/items/{id}", put(|| async { "replaced" }))
        .layer(VerifyLayer::new(verifier));
    let url = serve(app).await;
    let mode = mode.to_owned();
    let lines = tokio::task::spawn_blocking(move || {
        run_script(
            "sign_requests.py",
            &[&url, "billing", SECRET, "--mode", &mode],
            "",
        )
    })
    .await
    .unwrap();
    lines
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
                l["expect"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn components_comms_never_covers_are_checked_when_python_covers_them() {
    // `@target-uri`, `@scheme`, `@request-target`, `@query-param`, a Dictionary member
    // (`;key`) and a field as a Byte Sequence (`;bs`), signed by requests-http-signature.
    let told = python_signed(
        "components",
        Verifier::new().service("billing", SECRET).scheme("http"),
    )
    .await;
    let names: Vec<&str> = told.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "target-uri",
            "query-param",
            "field-params",
            "tampered-query-param",
            "tampered-dict-member",
            "other-dict-member",
        ]
    );
    for (name, status, expect) in &told {
        let want = if expect == "accepted" { 200 } else { 401 };
        assert_eq!(*status, want, "{name}, expected {expect}");
    }
    // Told nothing of the scheme, the verifier refuses what covers it, and only that.
    let untold = python_signed("components", Verifier::new().service("billing", SECRET)).await;
    let statuses: Vec<(&str, u64)> = untold
        .iter()
        .map(|(name, status, _)| (name.as_str(), *status))
        .collect();
    assert_eq!(
        statuses[..3],
        [
            ("target-uri", 401),
            ("query-param", 200),
            ("field-params", 200)
        ]
    );
    // Told another scheme than the one signed for, it refuses that request too.
    let wrong = python_signed(
        "components",
        Verifier::new().service("billing", SECRET).scheme("https"),
    )
    .await;
    assert_eq!((wrong[0].0.as_str(), wrong[0].1), ("target-uri", 401));
    assert_eq!((wrong[1].0.as_str(), wrong[1].1), ("query-param", 200));
}

#[derive(Serialize, Deserialize)]
struct Item {
    name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "billing",
    secret_env = "INTEROP_UNUSED_SECRET"
)]
trait Items {
    #[get("/items")]
    async fn list(&self, #[query] tag: Vec<String>, #[query] q: &str) -> Result<Value, Error>;

    #[post("/items", idempotent)]
    async fn create(&self, #[body] item: &Item) -> Result<Value, Error>;

    #[put("/items/<id>")]
    async fn replace(
        &self,
        id: &str,
        #[header("X-Request-Id")] request_id: &str,
        #[body] item: &Item,
    ) -> Result<(), Error>;

    #[delete("/items/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;
}

/// Requests a generated client sent, as the server received them.
async fn sent_by_comms() -> Vec<Recorded> {
    let server = TestServer::always(Reply::ok_json(json!({}))).await;
    let items = ItemsClient::builder()
        .base_url(server.url())
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    let item = Item {
        name: "Zoë".into()
    };
    items
        .list(vec!["b".into(), "a".into()], "x+y z")
        .await
        .unwrap();
    items.create(&item).await.unwrap();
    items.replace("a b", "req-7", &item).await.unwrap();
    items.delete(7).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    requests
}

/// One captured request as `verify.py` reads it.
fn as_json(name: &str, r: &Recorded) -> Value {
    let host = r.header("host").unwrap();
    let headers: Vec<[&str; 2]> = r
        .headers
        .iter()
        .map(|(n, v)| [n.as_str(), v.to_str().unwrap()])
        .collect();
    json!({
        "name": name,
        "method": r.method.as_str(),
        "url": format!("http://{host}{}", r.uri),
        "headers": headers,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&r.body),
    })
}

/// Each genuine request, then altered copies of them, each of which must be refused.
fn tampered(requests: &[Recorded]) -> Vec<(String, Recorded)> {
    let mut out = Vec::new();
    let (list, create, replace) = (&requests[0], &requests[1], &requests[2]);
    let mut body = create.clone();
    body.body = Bytes::from_static(br#"{"name":"Eve"}"#);
    out.push(("tampered-body".to_owned(), body));
    let mut path = replace.clone();
    path.uri = "/items/b%20a".parse().unwrap();
    out.push(("tampered-path".to_owned(), path));
    let mut query = list.clone();
    let reordered = list.uri.to_string().replace("tag=b&tag=a", "tag=a&tag=b");
    assert_ne!(reordered, list.uri.to_string());
    query.uri = reordered.parse().unwrap();
    out.push(("tampered-query".to_owned(), query));
    let mut header = replace.clone();
    header
        .headers
        .insert("x-request-id", "req-8".parse().unwrap());
    out.push(("tampered-header".to_owned(), header));
    let mut method = requests[3].clone();
    method.method = comms::http::Method::GET;
    out.push(("tampered-method".to_owned(), method));
    out
}

#[tokio::test]
async fn requests_a_generated_client_sends_are_verified_in_python() {
    let requests = sent_by_comms().await;
    assert!(
        requests[2]
            .header("signature-input")
            .unwrap()
            .contains(r#""content-type" "x-request-id")"#),
        "the call's header is covered"
    );
    let mut batch: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| as_json(&format!("genuine-{i}"), r))
        .collect();
    for (name, r) in tampered(&requests) {
        batch.push(as_json(&name, &r));
    }
    // The first request again: a replay.
    batch.push(as_json("replay", &requests[0]));
    let input = serde_json::to_string(&batch).unwrap();
    let results =
        tokio::task::spawn_blocking(move || run_script("verify.py", &["billing", SECRET], &input))
            .await
            .unwrap();
    assert_eq!(results.len(), batch.len());
    for result in &results {
        let name = result["name"].as_str().unwrap();
        let ok = result["ok"].as_bool().unwrap();
        assert_eq!(ok, name.starts_with("genuine"), "{result}");
    }
}

/// A captured request as an `http::Request` with its absolute URI, as `httpsig-hyper` reads it.
fn as_http(r: &Recorded) -> http::Request<Full<Bytes>> {
    let host = r.header("host").unwrap();
    let mut builder = http::Request::builder()
        .method(r.method.clone())
        .uri(format!("http://{host}{}", r.uri));
    for (name, value) in &r.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(r.body.clone())).unwrap()
}

/// Verifies a captured request with the `httpsig` crate: `httpsig-hyper` reads the covered
/// components from the request and checks the `Content-Digest`, and `httpsig`'s HMAC key
/// checks the signature.
///
/// httpsig 0.0.26 writes the `@signature-params` line with the parameters in an order of its
/// own (`created`, `expires`, `nonce`, `alg`, `keyid`, `tag`) rather than as received, which
/// RFC 9421 §2.3 asks for; so its component lines are joined here with the member as the
/// request carries it. [`httpsig_verifies_in_its_own_order`] shows the crate's whole path
/// accepting the same request once its parameters are in that order.
async fn httpsig_verifies(r: &Recorded) -> Result<(), String> {
    let request = as_http(r);
    let key = SharedKey::HmacSha256(SECRET.as_bytes().to_vec());
    let ids = request.get_alg_key_ids().map_err(|e| e.to_string())?;
    let (alg, key_id) = &ids[0];
    assert_eq!(
        (alg.as_ref().map(|a| a.to_string()), key_id.as_deref()),
        (Some(AlgorithmName::HmacSha256.to_string()), Some("billing"))
    );
    let signatures = request.extract_signatures().map_err(|e| e.to_string())?;
    let (base, _) = signatures.get("comms").ok_or("no comms signature")?;
    let base = String::from_utf8(base.as_bytes()).unwrap();
    let (lines, _) = base.rsplit_once("\n\"@signature-params\": ").unwrap();
    let input = r.header("signature-input").unwrap();
    let member = input.strip_prefix("comms=").unwrap();
    let data = format!("{lines}\n\"@signature-params\": {member}");
    let signature = r.header("signature").unwrap();
    let mac = base64::engine::general_purpose::STANDARD
        .decode(&signature["comms=:".len()..signature.len() - 1])
        .unwrap();
    key.verify(data.as_bytes(), &mac)
        .map_err(|e| e.to_string())?;
    let verified = request
        .verify_content_digest()
        .await
        .map_err(|e| e.to_string())?;
    verified
        .into_body()
        .into_bytes()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// With the parameters re-signed in httpsig's own order, `verify_message_signature` accepts a
/// request comms sent, and refuses it with one byte of the query changed.
#[tokio::test]
async fn httpsig_verifies_in_its_own_order() {
    let mut r = sent_by_comms().await.remove(0);
    let input = r.header("signature-input").unwrap().to_owned();
    let (list, _) = input["comms=".len()..].split_once(';').unwrap();
    let components: Vec<&str> = list
        .trim_matches(['(', ')'])
        .split(' ')
        .map(|c| c.trim_matches('"'))
        .collect();
    let nonce = r.nonce().unwrap().to_owned();
    let created = input
        .split(";created=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let params = format!(r#";created={created};nonce="{nonce}";alg="hmac-sha256";keyid="billing""#);
    r.sign_as("comms", &components, &params, SECRET);
    let key = SharedKey::HmacSha256(SECRET.as_bytes().to_vec());
    as_http(&r)
        .verify_message_signature(&key, Some("billing"))
        .await
        .unwrap();
    let mut changed = r.clone();
    changed.uri = r.uri.to_string().replace("x%2By", "x%2Bz").parse().unwrap();
    assert!(
        as_http(&changed)
            .verify_message_signature(&key, Some("billing"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn requests_a_generated_client_sends_are_verified_by_httpsig() {
    let requests = sent_by_comms().await;
    for r in &requests {
        httpsig_verifies(r)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.uri));
    }
    for (name, r) in tampered(&requests) {
        assert!(httpsig_verifies(&r).await.is_err(), "{name} verified");
    }
}

/// A request to `url` (`method`, `headers`, `body`) signed by the Rust `httpsig` crate under
/// label `comms`, covering the profile's components (and `content-digest` with a body) and
/// `extra`.
async fn signed_by_httpsig(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &'static str,
    extra: &[&str],
) -> http::Request<Bytes> {
    let nonce = format!("{:032x}", rand_u128());
    signed_by_httpsig_with(method, url, headers, body, extra, Some(&nonce)).await
}

/// [`signed_by_httpsig`] with `nonce`, or with the nonce httpsig draws itself when `None`
/// (`set_random_nonce`: standard base64 of 32 bytes, `+`, `/` and `=` among its characters).
async fn signed_by_httpsig_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &'static str,
    extra: &[&str],
    nonce: Option<&str>,
) -> http::Request<Bytes> {
    use http_body_util::BodyExt as _;
    use httpsig_hyper::prelude::HttpSignatureParams;
    use httpsig_hyper::prelude::message_component::HttpMessageComponentId;

    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let mut covered = vec!["\"@method\"", "\"@authority\"", "\"@path\"", "\"@query\""];
    let mut request = if body.is_empty() {
        request.map(|b| b.map_err(|never| match never {}).boxed())
    } else {
        covered.push("\"content-digest\"");
        request
            .set_content_digest(&httpsig_hyper::ContentDigestType::Sha256)
            .await
            .unwrap()
    };
    covered.extend_from_slice(extra);
    let ids: Vec<HttpMessageComponentId> = covered
        .iter()
        .map(|id| HttpMessageComponentId::try_from(*id).unwrap())
        .collect();
    let mut params = HttpSignatureParams::try_new(&ids).unwrap();
    match nonce {
        Some(nonce) => params.set_nonce(nonce),
        None => params.set_random_nonce(),
    };
    params.set_alg(&AlgorithmName::HmacSha256);
    params.set_keyid("billing");
    let key = SharedKey::HmacSha256(SECRET.as_bytes().to_vec());
    request
        .set_message_signature(&params, &key, Some("comms"))
        .await
        .unwrap();
    let (parts, body) = request.into_parts();
    http::Request::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// A number no other test run picked, for nonces.
fn rand_u128() -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    now.as_nanos() ^ (u128::from(std::process::id()) << 64)
}

/// Sends `request` to the server at `base` (its authority is the one signed for) and gives
/// the status.
async fn status_of(request: http::Request<Bytes>) -> u16 {
    let (parts, body) = request.into_parts();
    let sent = reqwest::Client::new()
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .unwrap();
    sent.status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn components_comms_never_covers_are_checked_when_httpsig_covers_them() {
    let verifier = Verifier::new().service("billing", SECRET).scheme("http");
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "listed" }).post(|| async { "created" }),
        )
        .layer(VerifyLayer::new(verifier));
    let url = serve(app).await;
    let query = format!("{url}/items?a=1&b=two");
    let all = [
        "\"@target-uri\"",
        "\"@scheme\"",
        "\"@request-target\"",
        "\"@query-param\";name=\"b\"",
    ];
    let genuine = signed_by_httpsig("GET", &query, &[], "", &all).await;
    assert_eq!(status_of(genuine).await, 200);
    let dict = [("x-dict", "a=1, b=2;x=?1, c=(x y)")];
    let member = ["\"x-dict\";key=\"b\""];
    let genuine = signed_by_httpsig("POST", &format!("{url}/items"), &dict, "{}", &member).await;
    assert_eq!(status_of(genuine).await, 200);

    // The covered query parameter changed.
    let mut tampered = signed_by_httpsig("GET", &query, &[], "", &all).await;
    *tampered.uri_mut() = format!("{url}/items?a=1&b=six").parse().unwrap();
    assert_eq!(status_of(tampered).await, 401);
    // The covered member changed; then one that is not covered.
    for (dictionary, expected) in [
        ("a=1, b=3;x=?1, c=(x y)", 401),
        ("a=9, b=2;x=?1, c=(x y)", 200),
    ] {
        let mut changed =
            signed_by_httpsig("POST", &format!("{url}/items"), &dict, "{}", &member).await;
        changed
            .headers_mut()
            .insert("x-dict", dictionary.parse().unwrap());
        assert_eq!(status_of(changed).await, expected, "{dictionary}");
    }
}

/// httpsig's own nonce (`set_random_nonce`) is standard base64, `+`, `/` and `=` padding
/// included, outside what the profile takes (16 to 128 characters of `A-Z a-z 0-9 - _`, which
/// a nonce store may use as it likes): refused as malformed, whatever else holds. Its users set
/// a nonce of their own (`set_nonce`, hex or base64url), as the other tests here do.
#[tokio::test]
async fn httpsigs_own_base64_nonce_is_refused_as_malformed() {
    let verifier = Verifier::new().service("billing", SECRET);
    let signed = signed_by_httpsig_with(
        "GET",
        "http://billing.internal/items?a=1",
        &[],
        "",
        &[],
        None,
    )
    .await;
    let input = signed.headers()["signature-input"].to_str().unwrap();
    assert!(input.contains("=\";") || input.ends_with("=\""), "{input}");
    let (parts, body) = signed.into_parts();
    let err = verifier
        .verify(&parts.method, &parts.uri, &parts.headers, &body)
        .await
        .unwrap_err();
    assert!(
        matches!(err, comms::verify::VerifyError::MalformedNonce),
        "{err}"
    );
}

/// README ("Migrating a Python fleet") gives a Python service receiving comms calls a recipe
/// on requests-http-signature's `verify` (`interop/readme_verify.py` runs it as written). The
/// library leaves the nonce to the application and takes a `created` up to a day old by
/// default; the recipe keeps to the comms profile: a comms call passes, and the same request
/// sent again is refused as a replay.
#[tokio::test]
async fn the_readme_python_verify_recipe_refuses_a_replay() {
    let requests = sent_by_comms().await;
    let batch = vec![
        as_json("first", &requests[0]),
        as_json("replayed", &requests[0]),
    ];
    let input = serde_json::to_string(&batch).unwrap();
    let results = tokio::task::spawn_blocking(move || {
        run_script("readme_verify.py", &["billing", SECRET], &input)
    })
    .await
    .unwrap();
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(
        results[1]["ok"], false,
        "the README's recipe accepted the same comms request twice: {}",
        results[1]
    );
}

/// The recipe refuses a comms signature two hours old, as a comms verifier does (300 s),
/// where the library's default `max_age` is a day.
#[tokio::test]
async fn the_readme_python_verify_recipe_refuses_a_stale_signature() {
    use comms::signing::{self, Message, Params, Secret};
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    let fields = [("content-digest", signing::EMPTY_CONTENT_DIGEST)];
    let message = Message {
        method: "GET",
        authority: "users.internal:8080",
        path: "/users/7",
        query: "",
        fields: &fields,
    };
    let params = Params {
        created,
        key_id: "billing",
        nonce: "0123456789abcdef0123456789abcdef",
    };
    let base = signing::signature_base(&message, &params);
    let headers = vec![
        ["Host", "users.internal:8080"],
        ["Content-Digest", signing::EMPTY_CONTENT_DIGEST],
    ];
    let input = signing::signature_input(&message, &params);
    let signature = signing::signature(&Secret::from(SECRET), &base);
    let mut headers: Vec<[&str; 2]> = headers;
    headers.push(["Signature-Input", &input]);
    headers.push(["Signature", &signature]);
    // comms refuses it.
    let mut map = http::HeaderMap::new();
    for [n, v] in &headers {
        map.insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let refused = Verifier::new()
        .service("billing", SECRET)
        .verify(&http::Method::GET, &"/users/7".parse().unwrap(), &map, b"")
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let batch = json!([{
        "name": "two-hours-old",
        "method": "GET",
        "url": "http://users.internal:8080/users/7",
        "headers": headers,
        "body_b64": "",
    }]);
    let input = batch.to_string();
    let results = tokio::task::spawn_blocking(move || {
        run_script("readme_verify.py", &["billing", SECRET], &input)
    })
    .await
    .unwrap();
    assert_eq!(
        results[0]["ok"], false,
        "the README's recipe accepted a signature two hours old: {}",
        results[0]
    );
}
