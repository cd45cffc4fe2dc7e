//! Secrets stay out of what comms shows: the keyed HMAC state once dropped, a received
//! response's `Debug`, a refused base URL's error and the builder's `Debug`, a refused
//! request's answer and the receiving side's logs.

use std::io::{Read, Seek, SeekFrom};

use comms::Call;
use comms_tests::{Reply, TestServer, plain_executor, record_logs};

// ---------------------------------------------------------------------------------------------
// The pre-keyed HMAC is wiped on drop.
// ---------------------------------------------------------------------------------------------

/// The SHA-256 states an `Hmac<Sha256>` keyed with `key` holds: the IV compressed over
/// `key ^ ipad` and over `key ^ opad`. Either one is as good as the key for forging MACs.
fn keyed_states(key: &[u8]) -> [[u8; 32]; 2] {
    assert!(key.len() <= 64);
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let iv: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    [0x36u8, 0x5c].map(|pad| {
        let mut padded = block;
        padded.iter_mut().for_each(|b| *b ^= pad);
        let mut state = iv;
        sha2::block_api::compress256(&mut state, &[padded]);
        let mut out = [0u8; 32];
        for (i, word) in state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        out
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every `Signer` (each client, each `Verifier` key) holds an `hmac::Hmac<sha2::Sha256>` for
/// its whole life, whose keyed SHA-256 states are as good as the key. `hmac`'s `zeroize`
/// feature only turns on `digest`'s; the states live in `sha2`'s core, wiped on drop under
/// `sha2`'s own `zeroize` feature. This reads the heap through /proc/self/mem after the drop:
/// neither state may be left there.
#[test]
fn the_pre_keyed_hmac_state_is_wiped_on_drop() {
    let key = b"review-secret-0123456789-abcdefghijklmnop";
    let states = keyed_states(key);
    let mac: Box<hmac::Hmac<sha2::Sha256>> =
        Box::new(<hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap());
    let size = std::mem::size_of::<hmac::Hmac<sha2::Sha256>>();
    let addr = &*mac as *const hmac::Hmac<sha2::Sha256> as usize;
    // Everything the read needs is made before the drop, so that nothing reuses the chunk.
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut before = vec![0u8; 4096];
    let mut after = vec![0u8; 4096];
    mem.seek(SeekFrom::Start(addr as u64)).unwrap();
    mem.read_exact(&mut before[..size]).unwrap();
    assert!(
        states.iter().all(|s| find(&before[..size], s).is_some()),
        "the probe is wrong: the live HMAC does not hold the computed keyed states"
    );
    drop(mac);
    mem.seek(SeekFrom::Start(addr as u64)).unwrap();
    mem.read_exact(&mut after[..size]).unwrap();
    let left: Vec<String> = states
        .iter()
        .zip(["ipad", "opad"])
        .filter(|(s, _)| find(&after[..size], &s[..]).is_some())
        .map(|(s, which)| {
            format!(
                "{which} state {}",
                s.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        })
        .collect();
    assert!(
        left.is_empty(),
        "key-equivalent HMAC state left in freed memory after drop: {left:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A received `Response`'s `Debug` shows neither the query (a signed URL's credentials) nor
// the response's header values (its cookies), as `url()`, errors and spans leave them out.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_received_responses_debug_shows_no_query_credentials() {
    let server = TestServer::always(
        Reply::ok_json(serde_json::json!({"ok": true}))
            .header("set-cookie", "session=cookie-s3cr3t-value; HttpOnly"),
    )
    .await;
    let exec = plain_executor(&server.url(), "billing", "client-secret");
    let response = exec
        .execute(
            Call::get("/files/report.pdf")
                .query("X-Goog-Signature", "goog-sig-s3cr3t")
                .query("sig", "azure-sas-s3cr3t"),
        )
        .await
        .unwrap();
    // What comms itself shows: the URL without its query.
    assert!(!response.url().unwrap().contains("s3cr3t"));
    let streamed = exec
        .execute_streaming(Call::get("/files/report.pdf").query("sig", "azure-sas-s3cr3t"))
        .await
        .unwrap();
    let value = comms::ResponseValue::new(7).with_header(
        comms::http::header::SET_COOKIE,
        comms::http::HeaderValue::from_static("session=cookie-s3cr3t-value"),
    );
    let stored = comms::server::StoredResponse::new(
        comms::http::StatusCode::OK,
        response.headers().clone(),
        bytes::Bytes::new(),
    );
    for shown in [
        format!("{response:?}"),
        format!("{streamed:?}"),
        format!("{value:?}"),
        format!("{stored:?}"),
    ] {
        assert!(shown.contains("set-cookie"), "the names are shown: {shown}");
        for secret in ["goog-sig-s3cr3t", "azure-sas-s3cr3t", "cookie-s3cr3t-value"] {
            assert!(!shown.contains(secret), "`{secret}` in a Debug:\n{shown}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A base URL refused for its query does not quote the query (an API key, say).
// ---------------------------------------------------------------------------------------------

#[test]
fn a_refused_base_url_does_not_quote_its_query() {
    let err = comms::Executor::builder()
        .base_url("https://api.partner.example/v1?api_key=sk_live_s3cr3t")
        .service_id("billing")
        .secret("client-secret")
        .build()
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        !shown.contains("sk_live_s3cr3t"),
        "the query's API key in a config error: {shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// A password holding both `@` and `/` is hidden whole by the builder's `Debug` and by the
// refusal of the base URL.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_base_url_password_with_an_at_and_a_slash_is_not_shown() {
    // The password is `p@ss/w0rd-s3cr3t`, written into an env var unencoded.
    let raw = "http://svc:p@ss/w0rd-s3cr3t@users.internal:8080";
    let builder = comms::Executor::builder()
        .base_url(raw)
        .service_id("billing")
        .secret("client-secret");
    let debug = format!("{builder:?}");
    let err = builder.build().unwrap_err().to_string();
    for shown in [&debug, &err] {
        assert!(
            !shown.contains("w0rd-s3cr3t"),
            "part of the password shown: {shown}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A refused request's logs and answer.
// ---------------------------------------------------------------------------------------------

/// A request signed with the wrong secret: the 401 says `unauthorized` only, and the server's
/// logs (every level) hold neither secret, the signature sent, nor the expected MAC.
#[tokio::test]
async fn a_refusal_logs_and_answers_nothing_secret() {
    let (logs, _guard) = record_logs(tracing::Level::TRACE);
    let verifier = comms::verify::Verifier::new().service("billing", "server-side-s3cr3t");
    let app: axum::Router = axum::Router::new()
        .route("/x", axum::routing::get(|| async { "ok" }))
        .layer(comms::verify::VerifyLayer::new(verifier));
    let url = comms_tests::serve(app).await;
    let exec = plain_executor(&url, "billing", "client-wrong-s3cr3t");
    let err = exec
        .execute(Call::get("/x").query("sig", "q-s3cr3t"))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    let message = match &err {
        comms::Error::Unauthorized(e) => e.message().unwrap_or_default().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(message, "unauthorized");
    let text = logs.text();
    assert!(text.contains("signature mismatch"), "{text}");
    // Which key failed, so that a secret rotated on one side only is found from the log.
    assert!(text.contains("key_id=\"billing\""), "{text}");
    for secret in [
        "server-side-s3cr3t",
        "client-wrong-s3cr3t",
        "comms=:",
        "q-s3cr3t",
    ] {
        assert!(!text.contains(secret), "`{secret}` logged:\n{text}");
        assert!(
            !format!("{err:?}").contains(secret),
            "`{secret}` in {err:?}"
        );
    }
}

/// The key a refusal's log names is that of the signature checked: comms' own, when another
/// application's signature outside comms' profile, by another key the verifier knows, comes
/// first and is passed over.
#[tokio::test]
async fn a_refusal_logs_the_key_of_the_signature_checked() {
    let (logs, _guard) = record_logs(tracing::Level::TRACE);
    let verifier = comms::verify::Verifier::new()
        .service("billing", "server-side-s3cr3t")
        .service("other", "other-application-s3cr3t");
    let app: axum::Router = axum::Router::new()
        .route("/x", axum::routing::get(|| async { "ok" }))
        .layer(comms::verify::VerifyLayer::new(verifier));
    let url = comms_tests::serve(app).await;
    let recorder = TestServer::always(Reply::status(200)).await;
    plain_executor(&recorder.url(), "billing", "client-wrong-s3cr3t")
        .execute(Call::get("/x"))
        .await
        .unwrap();
    let signed = recorder.requests().remove(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Another application's signature by a known key, outside the profile (no nonce), first.
    let mut request = reqwest::Client::new().get(format!("{url}/x"));
    for (name, value) in &signed.headers {
        let value = value.to_str().unwrap();
        request = match name.as_str() {
            "host" | "content-length" => request,
            "signature-input" => request.header(
                name,
                format!(r#"app=("@method");created={now};keyid="other", {value}"#),
            ),
            "signature" => request.header(name, format!("app=:AAAA:, {value}")),
            _ => request.header(name, value),
        };
    }
    assert_eq!(request.send().await.unwrap().status(), 401);
    let text = logs.text();
    let refusal = text
        .lines()
        .find(|l| l.contains("refused an unverified request"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{text}"));
    assert!(refusal.contains("signature mismatch"), "{refusal}");
    assert!(refusal.contains("key_id=\"billing\""), "{refusal}");
}

// ---------------------------------------------------------------------------------------------
// A short secret is taken, with a warning that does not show it.
// ---------------------------------------------------------------------------------------------

/// A secret under 32 bytes (HMAC-SHA256's output, RFC 2104's advice for a key) signs and
/// verifies as any other, but building a client or a verifier key with one warns, naming the
/// service and key; a secret of 32 bytes is taken silently.
#[test]
fn a_secret_under_32_bytes_is_taken_with_a_warning_that_does_not_show_it() {
    let short = "hunter2-but-longer-31-bytes-xyz";
    assert_eq!(short.len(), 31);
    let long = "hunter2-but-longer-32-bytes-xyz!";
    assert_eq!(long.len(), 32);
    let (logs, _guard) = record_logs(tracing::Level::WARN);

    comms::Executor::builder()
        .base_url("http://127.0.0.1:9")
        .service_id("billing")
        .secret(long)
        .build()
        .unwrap();
    let _ = comms::verify::Verifier::new().service("billing", long);
    assert_eq!(logs.text(), "", "nothing for a 32-byte secret");

    comms::Executor::builder()
        .base_url("http://127.0.0.1:9")
        .service_id("billing")
        .key_id("billing-2026")
        .secret(short)
        .build()
        .unwrap();
    let client = logs.line(
        "the client's warning",
        &[
            "WARN",
            "the signing secret is shorter than 32 bytes",
            "service_id=billing",
            "key_id=billing-2026",
            "use 32 random bytes",
        ],
    );
    let _ = comms::verify::Verifier::new().key("orders-1", "orders", short);
    let verifier = logs.line(
        "the verifier's warning",
        &[
            "WARN",
            "Verifier: the secret of this key is shorter than 32 bytes",
            "key_id=orders-1",
            "service_id=orders",
        ],
    );
    for line in [client, verifier] {
        assert!(!line.contains("hunter2"), "{line}");
    }
    assert!(!logs.text().contains("hunter2"), "{}", logs.text());
}
