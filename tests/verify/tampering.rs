//! A genuine request with one field changed at a time: every change is caught.

use super::*;

#[tokio::test]
async fn each_tampered_field_is_caught() {
    let r = genuine().await;
    assert_eq!(
        r.header("signature-input")
            .unwrap()
            .split(';')
            .next()
            .unwrap(),
        format!(
            "comms=({})",
            COVERED
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        "the request covers what the profile says, in its order"
    );
    type Tamper = fn(&mut Recorded);
    type Expect = fn(&VerifyError) -> bool;
    let bad_signature: Expect = |e| matches!(e, VerifyError::BadSignature);
    fn set(r: &mut Recorded, name: &'static str, value: &'static str) {
        r.headers.insert(name, HeaderValue::from_static(value));
    }
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        ("method", |r| r.method = Method::PUT, bad_signature),
        (
            "method case",
            |r| r.method = Method::from_bytes(b"post").unwrap(),
            bad_signature,
        ),
        (
            "authority",
            |r| set(r, "host", "evil.internal:8080"),
            bad_signature,
        ),
        (
            "unknown key id, long",
            |r| {
                let input = r.header("signature-input").unwrap().replace(
                    "keyid=\"billing\"",
                    &format!("keyid=\"{}\"", "k".repeat(5000)),
                );
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::UnknownKey(Some(k)) if k.len() == 64),
        ),
        (
            "unknown derived component, long",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace("\"@method\"", &format!("\"@{}\"", "m".repeat(5000)));
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::UnsupportedComponent(c) if c.chars().count() == 64),
        ),
        (
            "signature-input over 8 KiB, refused unparsed",
            |r| {
                let input = format!(
                    "{};x=\"{}\"",
                    r.header("signature-input").unwrap(),
                    "a".repeat(9000)
                );
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::MalformedHeader(h) if h == "signature-input"),
        ),
        (
            "path",
            |r| r.uri = Uri::from_static("/orders/8?a=1&a=2&q=x%2By"),
            bad_signature,
        ),
        (
            "query value",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=3&q=x%2By"),
            bad_signature,
        ),
        (
            "query + for %2B",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=2&q=x+y"),
            bad_signature,
        ),
        (
            "repeated keys reordered",
            |r| r.uri = Uri::from_static("/orders/7?a=2&a=1&q=x%2By"),
            bad_signature,
        ),
        (
            "extra query",
            |r| r.uri = Uri::from_static("/orders/7?a=1&a=2&q=x%2By&admin=1"),
            bad_signature,
        ),
        (
            "query removed",
            |r| r.uri = Uri::from_static("/orders/7"),
            bad_signature,
        ),
        (
            "body",
            |r| r.body = bytes::Bytes::from_static(br#"{"qty":200}"#),
            |e| matches!(e, VerifyError::ContentDigestMismatch),
        ),
        (
            "content-digest",
            |r| set(r, "content-digest", comms::signing::EMPTY_CONTENT_DIGEST),
            bad_signature,
        ),
        (
            "content-type",
            |r| set(r, "content-type", "text/plain"),
            bad_signature,
        ),
        (
            "idempotency-key",
            |r| set(r, "idempotency-key", "another-key"),
            bad_signature,
        ),
        (
            "x-request-id",
            |r| set(r, "x-request-id", "req-2"),
            bad_signature,
        ),
        (
            "covered header removed",
            |r| {
                r.headers.remove("x-request-id");
            },
            |e| matches!(e, VerifyError::CoveredFieldNotOnce(f) if f == "x-request-id"),
        ),
        (
            "covered header repeated",
            |r| {
                r.headers
                    .append("x-request-id", HeaderValue::from_static("req-1"));
            },
            |e| matches!(e, VerifyError::CoveredFieldNotOnce(f) if f == "x-request-id"),
        ),
        (
            "created",
            |r| {
                let input = r.header("signature-input").unwrap().to_owned();
                let created = created_of(r);
                let moved = input.replace(
                    &format!("created={created}"),
                    &format!("created={}", created - 1),
                );
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&moved).unwrap());
            },
            bad_signature,
        ),
        (
            "nonce",
            |r| {
                let input = r.header("signature-input").unwrap().to_owned();
                let (head, _) = input.split_once(";nonce=").unwrap();
                let moved = format!(r#"{head};nonce="ffffffffffffffffffffffffffffffff""#);
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&moved).unwrap());
            },
            bad_signature,
        ),
        (
            "signature",
            |r| {
                let sig = r.header("signature").unwrap();
                let flipped = if sig.starts_with("comms=:A") {
                    sig.replacen("comms=:A", "comms=:B", 1)
                } else {
                    format!("comms=:A{}", &sig[8..])
                };
                r.headers
                    .insert("signature", HeaderValue::from_str(&flipped).unwrap());
            },
            bad_signature,
        ),
        (
            "coverage removed from the input",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace(" \"x-request-id\"", "");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            bad_signature,
        ),
        (
            "unknown key",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace("keyid=\"billing\"", "keyid=\"mallory\"");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            |e| matches!(e, VerifyError::UnknownKey(Some(k)) if k == "mallory"),
        ),
        (
            "another service's key",
            |r| {
                let input = r
                    .header("signature-input")
                    .unwrap()
                    .replace("keyid=\"billing\"", "keyid=\"other\"");
                r.headers
                    .insert("signature-input", HeaderValue::from_str(&input).unwrap());
            },
            bad_signature,
        ),
        (
            "signature label mismatch",
            |r| {
                let sig = r
                    .header("signature")
                    .unwrap()
                    .replacen("comms=", "other=", 1);
                r.headers
                    .insert("signature", HeaderValue::from_str(&sig).unwrap());
            },
            |e| matches!(e, VerifyError::MalformedHeader(h) if h == "signature"),
        ),
    ];
    for (what, tamper, expected) in cases {
        let mut copy = r.clone();
        tamper(&mut copy);
        let err = check(&verifier(), &copy).await.expect_err(what);
        assert!(expected(&err), "{what}: got {err:?}");
    }
    // The untouched request still verifies (the failures above stored no nonce).
    check(&verifier(), &r).await.unwrap();
}

#[tokio::test]
async fn a_request_signed_twice_by_known_keys_passes_once_whichever_comes_first() {
    // The first signature by a known key is the one checked; which one that is, is the
    // sender's choice (the order is signed by none). The others' nonces are recorded too, so
    // the same request, its signatures swapped or the first dropped, is a replay.
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = genuine().await;
    let sign = |label: &str, key: &str, secret: &str, nonce: char| {
        let mut signed = request.clone();
        let nonce = nonce.to_string().repeat(32);
        signed.sign_as(label, COVERED, &params(created, key, &nonce), secret);
        signed
    };
    let other = sign("gw", "other", "other-secret", '1');
    let billing = sign("comms", "billing", SECRET, '2');
    let unknown = sign("x", "stranger", "stranger-secret", '3');
    let v = verifier();
    let caller = check(&v, &signed_by_all(&[&unknown, &other, &billing]))
        .await
        .unwrap();
    assert_eq!(caller.service_id(), "other", "the first by a known key");
    for replay in [
        signed_by_all(&[&billing, &other]),
        signed_by_all(&[&billing]),
        signed_by_all(&[&unknown, &billing]),
    ] {
        let again = check(&v, &replay).await;
        assert!(matches!(again, Err(VerifyError::Replayed)), "{again:?}");
    }
    // A fresh verifier: the known one beside an unknown one is checked.
    let caller = check(&verifier(), &signed_by_all(&[&unknown, &billing]))
        .await
        .unwrap();
    assert_eq!(caller.service_id(), "billing");
}

/// A second signature by a known key that does not cover `content-digest` (a gateway's, over
/// the components the profile requires), beside one that does: whether it is in the profile
/// must not hang on the request's `Content-Length`. Skipped for the body, its nonce went
/// unrecorded, and the head sent again alone with no body passed: the request served twice.
#[tokio::test]
async fn a_second_signature_not_covering_the_body_is_recorded_and_cannot_be_replayed_bodiless() {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = genuine().await;
    assert!(!request.body.is_empty());
    let mut billing = request.clone();
    billing.sign_as(
        "comms",
        COVERED,
        &params(created, "billing", &"4".repeat(32)),
        SECRET,
    );
    let mut gateway = request.clone();
    gateway.sign_as(
        "gw",
        &["@method", "@authority", "@path", "@query"],
        &params(created, "other", &"5".repeat(32)),
        "other-secret",
    );
    let v = verifier();
    let caller = check(&v, &signed_by_all(&[&billing, &gateway]))
        .await
        .unwrap();
    assert_eq!(caller.service_id(), "billing");
    // The gateway's signature alone, the body and what declared it left out.
    let mut bodiless = gateway.clone();
    bodiless.body = Default::default();
    for name in ["content-length", "content-digest", "content-type"] {
        bodiless.headers.remove(name);
    }
    let replayed = check(&v, &bodiless).await;
    assert!(
        matches!(replayed, Err(VerifyError::Replayed)),
        "{replayed:?}"
    );
    // Alone, on a verifier that never saw it, it passes: it is a signature in the profile.
    assert_eq!(
        check(&verifier(), &bodiless).await.unwrap().service_id(),
        "other"
    );
}

/// The first of `requests` (one request, signed several times over) carrying the signatures
/// of them all, in their order.
fn signed_by_all(requests: &[&Recorded]) -> Recorded {
    let mut all = requests[0].clone();
    for header in ["signature-input", "signature"] {
        let values: Vec<&str> = requests.iter().map(|r| r.header(header).unwrap()).collect();
        all.headers
            .insert(header, values.join(", ").parse().unwrap());
    }
    all
}

/// `Signature-Input` members beside `r`'s own.
fn with_members(r: &Recorded, members: &[String]) -> Recorded {
    let mut r = r.clone();
    let mut input = r.header("signature-input").unwrap().to_owned();
    for member in members {
        input.push_str(", ");
        input.push_str(member);
    }
    r.headers.insert("signature-input", input.parse().unwrap());
    r
}

#[tokio::test]
async fn other_signatures_that_do_not_pass_have_the_request_refused_and_hold_no_room() {
    // A member naming a known key beside a genuine signature, signed by nobody (no
    // `Signature` for it): it is checked as the first is, fails, and the request is refused,
    // recording nothing. Two by one key, or more than four, are refused before any is checked.
    let v = Verifier::new()
        .service("billing", SECRET)
        .service("other", "other-secret")
        .nonce_store(MemoryNonceStore::with_capacity(8));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let unsigned = |i: usize, created: u64| {
        format!(r#"x{i}=("@method");created={created};keyid="billing";nonce="{i:032}""#)
    };
    let head = |key: &str, secret: &str| {
        let mut r = Recorded::head(Method::GET, "/x", "h", b"");
        r.sign_now(key, secret, &[]);
        r
    };
    let refused = check(
        &v,
        &with_members(&head("other", "other-secret"), &[unsigned(0, now)]),
    )
    .await;
    assert!(
        matches!(refused, Err(VerifyError::MalformedHeader(_))),
        "{refused:?}"
    );
    let two = [unsigned(1, now), unsigned(2, now - 1)];
    match check(&v, &with_members(&head("other", "other-secret"), &two)).await {
        Err(VerifyError::MalformedSignature(why)) => assert!(why.contains("one key"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Eight genuine requests fill the store's eight places: none went to the refused.
    for _ in 0..8 {
        check(&v, &head("billing", SECRET)).await.unwrap();
    }
    let ninth = check(&v, &head("billing", SECRET)).await;
    assert!(
        matches!(ninth, Err(VerifyError::NonceStore(_))),
        "{ninth:?}"
    );
    let five: Vec<String> = (10..15).map(|i| unsigned(i, now)).collect();
    match check(&v, &with_members(&head("other", "other-secret"), &five)).await {
        Err(VerifyError::MalformedSignature(why)) => assert!(why.contains("more than 4"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn one_nonce_under_two_signatures_is_kept_as_long_as_either_could_pass() {
    // billing signs with its key and the next one (a rotation), one nonce for both, the
    // second `created` later: the nonce is kept until the later window closes.
    let v = Verifier::new()
        .service("billing", SECRET)
        .key("billing-next", "billing", "next-secret")
        .max_skew(Duration::from_secs(3));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let covered = ["@method", "@authority", "@path", "@query", "content-digest"];
    let nonce = "n".repeat(32);
    let signed = |label: &str, key: &str, secret: &str, created: u64| {
        let mut r = Recorded::head(Method::GET, "/x", "h", b"");
        r.sign_as(label, &covered, &params(created, key, &nonce), secret);
        r
    };
    let first = signed("a", "billing", SECRET, now - 2);
    let second = signed("b", "billing-next", "next-secret", now + 2);
    let both = signed_by_all(&[&first, &second]);
    check(&v, &both).await.unwrap();
    // The first's window has closed; the second's has not.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = check(&v, &second).await;
    assert!(matches!(again, Err(VerifyError::Replayed)), "{again:?}");
}

#[tokio::test]
async fn another_signature_ahead_of_the_window_has_the_request_refused() {
    // "other" signs ahead of the window (its signer's clock 4 s fast, the skew 2 s): it could
    // pass later, alone, its nonce never recorded. The request is refused, as it would be
    // with that signature first; the same signature passes alone once its time has come.
    let v = Verifier::new()
        .service("billing", SECRET)
        .service("other", "other-secret")
        .max_skew(Duration::from_secs(2));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let covered = ["@method", "@authority", "@path", "@query", "content-digest"];
    let signed = |label: &str, key: &str, secret: &str, created: u64, nonce: char| {
        let mut r = Recorded::head(Method::GET, "/x", "h", b"");
        let nonce = nonce.to_string().repeat(32);
        r.sign_as(label, &covered, &params(created, key, &nonce), secret);
        r
    };
    let first = signed("a", "billing", SECRET, now, '1');
    let ahead = signed("b", "other", "other-secret", now + 5, '2');
    let both = signed_by_all(&[&first, &ahead]);
    let refused = check(&v, &both).await;
    assert!(
        matches!(refused, Err(VerifyError::FutureTimestamp(_))),
        "{refused:?}"
    );
    // One out of the window behind has it refused too: a replica sharing the nonce store
    // whose clock is behind could still take it alone.
    let behind = signed("c", "other", "other-secret", now - 60, '3');
    let with_stale = signed_by_all(&[&first, &behind]);
    let refused = check(&v, &with_stale).await;
    assert!(
        matches!(refused, Err(VerifyError::StaleTimestamp(_))),
        "{refused:?}"
    );
}
