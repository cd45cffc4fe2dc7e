//! What the RFC 9421 profile requires a signature to cover and carry, what it leaves to the
//! signer, and how missing or malformed headers are named.

use super::*;

#[tokio::test]
async fn coverage_the_profile_requires_is_enforced() {
    let r = genuine().await;
    let created = created_of(&r);
    let required = ["@method", "@authority", "@path", "@query", "content-digest"];
    for (i, dropped) in required.iter().enumerate() {
        let mut copy = r.clone();
        let components: Vec<&str> = required
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        let nonce = format!("{:032x}", i + 1);
        copy.sign_as(
            "comms",
            &components,
            &params(created, "billing", &nonce),
            SECRET,
        );
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::NotCovered(c) if c == *dropped),
            "{dropped}: {err:?}"
        );
    }
    // A bodiless GET need not cover content-digest.
    let mut get = r.clone();
    get.method = Method::GET;
    get.body = bytes::Bytes::new();
    get.headers.remove("content-length");
    get.headers.remove("content-digest");
    get.sign_as(
        "comms",
        &required[..4],
        &params(created, "billing", &"9".repeat(32)),
        SECRET,
    );
    check(&verifier(), &get).await.unwrap();
    // An unsupported derived component is refused, not ignored.
    let mut copy = r.clone();
    copy.sign_as(
        "comms",
        &[
            "@method",
            "@authority",
            "@path",
            "@query",
            "content-digest",
            "@status",
        ],
        &params(created, "billing", &"8".repeat(32)),
        SECRET,
    );
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::UnsupportedComponent(c)) if c == "@status"
    ));
}

#[tokio::test]
async fn other_signers_choices_are_accepted_and_checked() {
    let r = genuine().await;
    let created = created_of(&r);
    let all = [
        "@method",
        "@authority",
        "@path",
        "@query",
        "content-digest",
        "date",
    ];
    let mut copy = r.clone();
    copy.headers.insert(
        "date",
        HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
    );
    // Another label, `date` covered, a base64url nonce of 22 characters as Python's
    // requests-http-signature sends, no `alg`, parameters in another order.
    copy.sign_as(
        "sig-b21",
        &all,
        &format!(r#";keyid="billing";nonce="Ab-_0123456789xyzQRS9w";created={created}"#),
        SECRET,
    );
    let caller = check(&verifier(), &copy).await.unwrap();
    assert_eq!(
        (caller.service_id(), caller.key_id()),
        ("billing", "billing")
    );
    // The authority is compared in lower case, as RFC 9421 normalises it: signed for
    // `localhost`, received with a `Host` of `LOCALHOST`.
    let mut upper = r.clone();
    let port = r
        .header("host")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    upper.headers.insert(
        "host",
        HeaderValue::from_str(&format!("localhost:{port}")).unwrap(),
    );
    upper.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        &params(created, "billing", &"7".repeat(32)),
        SECRET,
    );
    upper.headers.insert(
        "host",
        HeaderValue::from_str(&format!("LOCALHOST:{port}")).unwrap(),
    );
    check(&verifier(), &upper).await.unwrap();
    // The covered `date` is checked.
    let mut changed = copy.clone();
    changed.headers.insert(
        "date",
        HeaderValue::from_static("Tue, 01 Dec 2026 10:00:01 GMT"),
    );
    assert!(matches!(
        check(&verifier(), &changed).await,
        Err(VerifyError::BadSignature)
    ));
    // Of several signatures, the first with a known key is used.
    let mut two = r.clone();
    let input = two.header("signature-input").unwrap().to_owned();
    let sig = two.header("signature").unwrap().to_owned();
    two.headers.insert(
        "signature-input",
        HeaderValue::from_str(&format!(
            r#"unknown=("@method");created={created};keyid="nobody";nonce="{}", {input}"#,
            "1".repeat(32)
        ))
        .unwrap(),
    );
    two.headers.insert(
        "signature",
        HeaderValue::from_str(&format!("unknown=:AAAA:, {sig}")).unwrap(),
    );
    check(&verifier(), &two).await.unwrap();
}

#[tokio::test]
async fn signature_parameters_are_checked() {
    let r = genuine().await;
    let created = created_of(&r);
    let covered = ["@method", "@authority", "@path", "@query", "content-digest"];
    let nonce = "0123456789abcdef0123456789abcdef";
    type Expect = fn(&VerifyError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (
            format!(r#";created={created};keyid="billing";alg="hmac-sha512";nonce="{nonce}""#),
            |e| matches!(e, VerifyError::UnsupportedAlgorithm(a) if a == "hmac-sha512"),
        ),
        (format!(r#";created={created};keyid="billing""#), |e| {
            matches!(e, VerifyError::MalformedSignature(_))
        }),
        (format!(r#";keyid="billing";nonce="{nonce}""#), |e| {
            matches!(e, VerifyError::MalformedSignature(_))
        }),
        (
            format!(r#";created={created};keyid="billing";nonce="short""#),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(r#";created={created};keyid="billing";nonce="{nonce}+/""#),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(
                r#";created={created};keyid="billing";nonce="{}""#,
                "n".repeat(129)
            ),
            |e| matches!(e, VerifyError::MalformedNonce),
        ),
        (
            format!(
                r#";created={created};expires={};keyid="billing";nonce="{nonce}""#,
                created - 400
            ),
            |e| matches!(e, VerifyError::Expired),
        ),
        (
            format!(r#";created="{created}";keyid="billing";nonce="{nonce}""#),
            |e| matches!(e, VerifyError::MalformedSignature(_)),
        ),
    ];
    for (params, expected) in cases {
        let mut copy = r.clone();
        copy.sign_as("comms", &covered, &params, SECRET);
        let err = check(&verifier(), &copy).await.expect_err(&params);
        assert!(expected(&err), "{params}: {err:?}");
    }
    // An `expires` still ahead, and a 128-character nonce, are fine.
    let mut copy = r.clone();
    copy.sign_as(
        "comms",
        &covered,
        &format!(
            r#";created={created};expires={};keyid="billing";nonce="{}""#,
            created + 60,
            "n".repeat(128)
        ),
        SECRET,
    );
    check(&verifier(), &copy).await.unwrap();
}

#[tokio::test]
async fn missing_and_malformed_headers_are_named() {
    let r = genuine().await;
    for name in ["signature", "content-digest"] {
        let mut copy = r.clone();
        copy.headers.remove(name);
        let err = check(&verifier(), &copy).await.unwrap_err();
        let named = match &err {
            VerifyError::MissingHeader(n) => n == name,
            VerifyError::CoveredFieldNotOnce(n) => n == name,
            _ => false,
        };
        assert!(named, "{name}: {err:?}");
    }
    let mut copy = r.clone();
    copy.headers.remove("signature-input");
    copy.headers.remove("signature");
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::MissingHeader(n)) if n == "signature-input"
    ));
    for (name, value) in [
        ("signature-input", "comms=(\"@method\""),
        ("signature-input", "comms=(@method)"),
        ("signature", "comms=notbytes"),
        ("content-digest", "sha-256=abc"),
    ] {
        let mut copy = r.clone();
        copy.headers.insert(name, HeaderValue::from_static(value));
        let err = check(&verifier(), &copy).await.unwrap_err();
        assert!(
            matches!(&err, VerifyError::MalformedHeader(n) if n == name)
                || matches!(&err, VerifyError::UnknownKey(None))
                || matches!(&err, VerifyError::BadSignature),
            "{name}={value}: {err:?}"
        );
    }
    // A legacy-looking request is refused unless legacy is accepted.
    let mut copy = r.clone();
    copy.headers.remove("signature-input");
    copy.headers
        .insert("x-signature", HeaderValue::from_static("00"));
    assert!(matches!(
        check(&verifier(), &copy).await,
        Err(VerifyError::LegacyNotAccepted)
    ));
}

#[tokio::test]
async fn an_authority_with_its_schemes_default_port_is_signed_without_it() {
    // RFC 9421 §2.2.3 normalises `@authority` as RFC 9110 §4.2.3 does: lower case, and no
    // default port. A client whose `Host` says `h:80` (or `h:443`) signs `h`.
    let signed = |host: &str| {
        let mut head = Recorded::head(Method::GET, "/x?a=1", "h", b"");
        head.sign_now("billing", SECRET, &[]);
        head.headers
            .insert("host", HeaderValue::from_str(host).unwrap());
        head
    };
    let http = Verifier::new().service("billing", SECRET).scheme("http");
    check(&http, &signed("h:80")).await.unwrap();
    check(&http, &signed("H:80")).await.unwrap();
    assert!(matches!(
        check(&http, &signed("h:443")).await,
        Err(VerifyError::BadSignature)
    ));
    let https = Verifier::new().service("billing", SECRET).scheme("https");
    check(&https, &signed("h:443")).await.unwrap();
    // The names a verifier is told to accept are compared the same way.
    let bound = Verifier::new()
        .service("billing", SECRET)
        .scheme("http")
        .authority("h:80");
    check(&bound, &signed("h:80")).await.unwrap();
    // Without the scheme, no port is the default one.
    let unknown = Verifier::new().service("billing", SECRET);
    assert!(matches!(
        check(&unknown, &signed("h:80")).await,
        Err(VerifyError::BadSignature)
    ));
    // But a name a verifier is told to accept may be written with either default port: its
    // callers' `http://h` and `https://h` sign `h`.
    for written in ["h:443", "h:80", "H:0443"] {
        let bound = Verifier::new()
            .service("billing", SECRET)
            .authority(written);
        let checked = check(&bound, &signed("h")).await;
        assert!(checked.is_ok(), "{written}: {checked:?}");
    }
    let elsewhere = Verifier::new()
        .service("billing", SECRET)
        .authority("h:8443");
    assert!(matches!(
        check(&elsewhere, &signed("h")).await,
        Err(VerifyError::WrongAuthority(_))
    ));
}

/// Two components whose identifiers are written differently but pick the same part of the
/// request (a query parameter's name percent-encoded or not, a member's `key` and `sf` in
/// either order) are one component covered twice: refused before any value is hashed, or a
/// caller knowing no secret could have one long query value encoded and hashed 60 times over.
/// A `@query-param` name that is not percent-encoded UTF-8 names nothing.
#[test]
fn one_component_written_two_ways_is_covered_twice() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = |extra: &[&str]| {
        let mut r = Recorded::head(Method::GET, "/x?a=1&b=2", "h", b"");
        r.headers
            .insert("example-dict", HeaderValue::from_static("a=1, b=2;x=?0"));
        let mut components = vec![
            r#""@method""#,
            r#""@authority""#,
            r#""@path""#,
            r#""@query""#,
        ];
        components.extend_from_slice(extra);
        let input = format!(
            r#"sig=({});created={now};keyid="billing";alg="hmac-sha256";nonce="{}""#,
            components.join(" "),
            "7".repeat(32)
        );
        r.headers
            .insert("signature-input", HeaderValue::from_str(&input).unwrap());
        r.headers.insert(
            "signature",
            HeaderValue::from_static("sig=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"),
        );
        verifier()
            .verify_head(&r.method, &r.uri, &r.headers)
            .map(|_| ())
    };
    let twice = |result: Result<(), VerifyError>| matches!(result, Err(VerifyError::MalformedSignature(why)) if why.contains("covered twice"));
    for pair in [
        [r#""@query-param";name="a""#, r#""@query-param";name="%61""#],
        [
            r#""@query-param";name="%61""#,
            r#""@query-param";name="%61""#,
        ],
        [
            r#""example-dict";key="b";sf"#,
            r#""example-dict";sf;key="b""#,
        ],
        [r#""example-dict";key="b""#, r#""example-dict";key="b";sf"#],
        [r#""example-dict";bs"#, r#""example-dict";bs=?1"#],
    ] {
        let result = head(&pair);
        assert!(twice(result), "{pair:?}");
    }
    // Different parts of the request: each checked, and here the made-up signature fails.
    for pair in [
        [r#""@query-param";name="a""#, r#""@query-param";name="b""#],
        [r#""example-dict";key="a""#, r#""example-dict";key="b""#],
        [r#""example-dict""#, r#""example-dict";bs"#],
    ] {
        let result = head(&pair);
        assert!(
            matches!(result, Err(VerifyError::BadSignature)),
            "{pair:?}: {result:?}"
        );
    }
    let not_utf8 = head(&[r#""@query-param";name="%FF""#]);
    assert!(
        matches!(&not_utf8, Err(VerifyError::UnsupportedComponent(c)) if c.contains("%FF")),
        "{not_utf8:?}"
    );
}
