//! Requests whose form, not their fields, a signature could be stretched over: a target naming
//! no path, a legacy path with an encoded `/`, a second signature that passes in one form of
//! the request line only. Sent as raw bytes, as no client library would write them.

use axum::extract::Path;
use comms::signing::{Secret, legacy_string_to_sign, sign_legacy};

use super::*;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `r`'s head (no body) with `target` on its request line, on a fresh connection: the answer.
async fn send(url: &str, r: &Recorded, target: &str) -> String {
    comms_tests::raw_exchange(url, &r.head_bytes(target), Duration::from_secs(5)).await
}

/// A legacy (`microservice_comms`) GET head for `path`, signed by `billing` now over
/// `signed_path` (decoded, as the Python client signs a path its caller did not encode).
fn legacy_head(path: &str, signed_path: &str, host: &str) -> Recorded {
    legacy_head_over(path, host, |timestamp| {
        legacy_string_to_sign("GET", signed_path, timestamp)
    })
}

/// A legacy GET head for `path`, signed by `billing` now over the string `to_sign` makes of
/// the timestamp.
fn legacy_head_over(path: &str, host: &str, to_sign: impl Fn(u64) -> Vec<u8>) -> Recorded {
    let timestamp = now_secs();
    let mut r = Recorded::head(Method::GET, path, host, b"");
    r.headers.remove("content-digest");
    let signature = sign_legacy(&Secret::from(SECRET), &to_sign(timestamp));
    for (name, value) in [
        ("x-service-id", "billing".to_owned()),
        ("x-timestamp", timestamp.to_string()),
        ("x-signature", signature),
    ] {
        r.headers
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    r
}

#[tokio::test]
async fn a_signature_over_the_root_is_refused_for_a_target_naming_no_path() {
    // axum serves an authority-form request (`GET host:port`) from its fallback, not from
    // `/`: a signature over `/` must not reach it.
    let app = Router::new()
        .route("/", get(|| async { "root" }))
        .fallback(|| async { "fallback" })
        .layer(VerifyLayer::new(verifier().accept_legacy(true)));
    let url = serve(app).await;
    let host = url.trim_start_matches("http://").to_owned();
    for target in [host.as_str(), "*", "/"] {
        let mut r = Recorded::head(Method::GET, "/", &host, b"");
        r.sign_now("billing", SECRET, &[]);
        let answer = send(&url, &r, target).await;
        let legacy = legacy_head("/", "/", &host);
        let legacy_answer = send(&url, &legacy, target).await;
        for answer in [answer, legacy_answer] {
            if target == "/" {
                assert!(answer.ends_with("root"), "{target}: {answer}");
            } else {
                assert!(answer.starts_with("HTTP/1.1 401"), "{target}: {answer}");
                assert!(!answer.contains("fallback"), "{target}: {answer}");
            }
        }
    }
    let mut r = Recorded::head(Method::GET, "/", &host, b"");
    r.sign_now("billing", SECRET, &[]);
    r.uri = Uri::from_static("*");
    assert!(matches!(
        check(&verifier(), &r).await,
        Err(VerifyError::NoPath)
    ));
}

#[tokio::test]
async fn a_legacy_signature_is_refused_on_a_path_with_an_encoded_slash() {
    // The legacy scheme signs the decoded path: `/files/a/b` and `/files/a%2Fb` would share
    // a signature, and the router sends them to different routes.
    let app = Router::new()
        .route("/files/{name}", get(|| async { "one segment" }))
        .route("/files/{dir}/{name}", get(|| async { "two segments" }))
        .layer(VerifyLayer::new(verifier().accept_legacy(true)));
    let url = serve(app).await;
    let host = url.trim_start_matches("http://").to_owned();
    let signed = legacy_head("/files/a/b", "/files/a/b", &host);
    let answer = send(&url, &signed, "/files/a/b").await;
    assert!(answer.ends_with("two segments"), "{answer}");
    for target in ["/files/a%2Fb", "/files/a%2fb"] {
        let moved = legacy_head("/files/a/b", "/files/a/b", &host);
        let answer = send(&url, &moved, target).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{target}: {answer}");
        assert!(!answer.contains("segment"), "{target}: {answer}");
    }
    let mut r = legacy_head("/files/a/b", "/files/a/b", "h");
    r.uri = Uri::from_static("/files/a%2Fb");
    let refused = check(&verifier().accept_legacy(true), &r).await;
    assert!(
        matches!(refused, Err(VerifyError::EncodedSlashInLegacyPath)),
        "{refused:?}"
    );
    // Other encodings decode to what the router hands the handler: still accepted.
    let mut r = legacy_head("/users/1", "/users/1", "h");
    r.uri = Uri::from_static("/users/%31");
    assert!(check(&verifier().accept_legacy(true), &r).await.is_ok());
}

#[tokio::test]
async fn a_legacy_signature_over_a_path_its_caller_encoded_is_checked_as_sent_and_stays_there() {
    // The Python client signs the path its caller wrote, and sends one written encoded as it
    // is: `/items/a%20b` (the resource `a b`) is signed so. Decoded, `/items/a%2520b` (the
    // resource `a%20b`) reads the same: the signature must not pass for it.
    let app = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<String>| async move { format!("item {id}") }),
        )
        .layer(VerifyLayer::new(verifier().accept_legacy(true)));
    let url = serve(app).await;
    let host = url.trim_start_matches("http://").to_owned();
    let as_written = |path: &'static str| move |ts: u64| format!("GET|{path}|{ts}").into_bytes();
    for (signed, target, served) in [
        // Encoded by its caller, signed and sent as written.
        ("/items/a%20b", "/items/a%20b", "item a b"),
        ("/items/caf%C3%A9", "/items/caf%C3%A9", "item café"),
        // Not encoded by its caller: signed decoded, sent encoded (a lone `%` as `%25`).
        ("/items/100%", "/items/100%25", "item 100%"),
        ("/items/a b", "/items/a%20b", "item a b"),
    ] {
        let answer = send(
            &url,
            &legacy_head_over(target, &host, as_written(signed)),
            target,
        )
        .await;
        assert!(answer.ends_with(served), "{signed} as {target}: {answer}");
    }
    for (signed, moved_to) in [
        ("/items/a%20b", "/items/a%2520b"),
        ("/items/x%41", "/items/x%2541"),
    ] {
        let answer = send(
            &url,
            &legacy_head_over(signed, &host, as_written(signed)),
            moved_to,
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{signed} at {moved_to}: {answer}"
        );
        assert!(!answer.contains("item"), "{signed} at {moved_to}: {answer}");
    }
    let mut r = legacy_head_over("/items/a%20b", "h", as_written("/items/a%20b"));
    r.uri = Uri::from_static("/items/a%2520b");
    let refused = check(&verifier().accept_legacy(true), &r).await;
    assert!(
        matches!(refused, Err(VerifyError::EncodedEscapeInLegacyPath)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_second_signature_that_passes_only_in_another_form_cannot_serve_a_request_twice() {
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    // Two signatures by `billing`: comms' own, and another signer's that also covers
    // `@scheme`. The verifier is not told its scheme, so in origin-form the second cannot be
    // checked, while in absolute-form (`GET http://host/echo`) the request line names one.
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let app = Router::new()
        .route(
            "/echo",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "served" }
            }),
        )
        .layer(VerifyLayer::new(
            Verifier::new().service("billing", SECRET).key(
                "billing-next",
                "billing",
                "next-secret",
            ),
        ));
    let url = serve(app).await;
    let host = url.trim_start_matches("http://").to_owned();
    let mut r = Recorded::head(Method::GET, "/echo", &host, b"");
    r.sign_now("billing", SECRET, &[]);
    let member = format!(
        r#"("@method" "@authority" "@path" "@query" "content-digest" "@scheme");created={};keyid="billing-next";alg="hmac-sha256";nonce="{}""#,
        now_secs(),
        "7".repeat(32)
    );
    let base = format!(
        "\"@method\": GET\n\"@authority\": {host}\n\"@path\": /echo\n\"@query\": ?\n\
         \"content-digest\": {}\n\"@scheme\": http\n\"@signature-params\": {member}",
        r.header("content-digest").unwrap()
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"next-secret").unwrap();
    mac.update(base.as_bytes());
    let other_input = format!("py={member}");
    let other_signature = format!(
        "py=:{}:",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    // Both signatures, origin-form: the second cannot be checked here, so the request is
    // refused, not served with that signature's nonce left unrecorded.
    let mut both = r.clone();
    let (input, signature) = (r.header("signature-input"), r.header("signature"));
    both.headers.insert(
        "signature-input",
        format!("{}, {other_input}", input.unwrap())
            .parse()
            .unwrap(),
    );
    both.headers.insert(
        "signature",
        format!("{}, {other_signature}", signature.unwrap())
            .parse()
            .unwrap(),
    );
    let first = send(&url, &both, "/echo").await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    // The second alone, in absolute-form: whatever the verifier makes of it, the request is
    // served at most once in all.
    let mut alone = r.clone();
    alone
        .headers
        .insert("signature-input", other_input.parse().unwrap());
    alone
        .headers
        .insert("signature", other_signature.parse().unwrap());
    let absolute = format!("http://{host}/echo");
    send(&url, &alone, &absolute).await;
    let again = send(&url, &alone, &absolute).await;
    assert!(again.starts_with("HTTP/1.1 401"), "{again}");
    assert!(
        served.load(Ordering::SeqCst) <= 1,
        "one request served twice"
    );
}

#[tokio::test]
async fn another_applications_signature_beside_comms_is_left_alone_unless_it_could_pass() {
    // A second signature by a known key that is outside the profile by its own parameters or
    // coverage passes nowhere, and does not cost comms' own its request, before it or after
    // it (which comes first is the sender's choice); one in the profile that cannot be checked
    // here (it covers a scheme the verifier was not told) has it refused, since another form
    // of the request could pass it.
    let now = now_secs();
    let with_other = |first: bool, components: &[&str], params: &str| {
        let mut r = Recorded::head(Method::GET, "/orders/7?a=1", "orders.internal:8080", b"");
        r.sign_now("billing", SECRET, &[]);
        let mut other = r.clone();
        other.sign_as("app", components, params, "other-secret");
        for name in ["signature-input", "signature"] {
            let (ours, theirs) = (r.header(name).unwrap(), other.header(name).unwrap());
            let both = if first {
                format!("{theirs}, {ours}")
            } else {
                format!("{ours}, {theirs}")
            };
            r.headers.insert(name, both.parse().unwrap());
        }
        r
    };
    for first in [false, true] {
        // `requests-http-signature`'s defaults: `@target-uri`, no nonce.
        let defaults = with_other(
            first,
            &["@method", "@authority", "@target-uri"],
            &format!(r#";created={now};keyid="other";alg="hmac-sha256""#),
        );
        let checked = check(&verifier(), &defaults).await;
        assert!(
            matches!(&checked, Ok(caller) if caller.service_id() == "billing"),
            "no nonce, first: {first}: {checked:?}"
        );
        // A gateway's, with fewer components.
        let fewer = with_other(
            first,
            &["@method", "@authority", "@path"],
            &format!(
                r#";created={now};keyid="other";nonce="{}";tag="gateway""#,
                "5".repeat(32)
            ),
        );
        let checked = check(&verifier(), &fewer).await;
        assert!(
            matches!(&checked, Ok(caller) if caller.service_id() == "billing"),
            "fewer components, first: {first}: {checked:?}"
        );
        // The profile and `@target-uri`, under a verifier not told its scheme.
        let profile = [
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
            "@target-uri",
        ];
        let params = format!(r#";created={now};keyid="other";nonce="{}""#, "6".repeat(32));
        let unknown = check(&verifier(), &with_other(first, &profile, &params)).await;
        assert!(
            matches!(unknown, Err(VerifyError::UnknownScheme)),
            "first: {first}: {unknown:?}"
        );
    }
    // Outside the profile alone, it is refused for what it lacks.
    let mut alone = Recorded::head(Method::GET, "/orders/7?a=1", "orders.internal:8080", b"");
    alone.sign_as(
        "app",
        &["@method", "@authority", "@path"],
        &format!(r#";created={now};keyid="other";nonce="{}""#, "7".repeat(32)),
        "other-secret",
    );
    let refused = check(&verifier(), &alone).await;
    assert!(
        matches!(refused, Err(VerifyError::NotCovered(_))),
        "{refused:?}"
    );
}
