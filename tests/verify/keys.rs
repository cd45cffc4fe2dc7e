//! Clock skew, and a secret rotated without downtime.

use super::*;

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    // Requests signed with a clock far off are outside a 1 s window of this one.
    let r = genuine().await;
    let v = verifier().max_skew(Duration::from_secs(1));
    let created = created_of(&r);
    for (shift, stale) in [(-30i64, true), (30, false)] {
        let mut copy = r.clone();
        let moved = (created as i64 + shift) as u64;
        copy.sign_as(
            "comms",
            COVERED,
            &params(moved, "billing", "0123456789abcdef0123456789abcdef"),
            SECRET,
        );
        let err = check(&v, &copy).await.unwrap_err();
        if stale {
            assert!(
                matches!(err, VerifyError::StaleTimestamp(d) if d >= Duration::from_secs(29)),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, VerifyError::FutureTimestamp(d) if d >= Duration::from_secs(29)),
                "{err:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_secret_is_rotated_without_downtime() {
    let server = TestServer::always(Reply::status(200)).await;
    let client = |key_id: Option<&str>, secret: &str| {
        let builder = Executor::builder()
            .base_url(server.url())
            .service_id("billing")
            .secret(secret)
            .retry(RetryConfig::none())
            .breaker(BreakerConfig::disabled());
        match key_id {
            Some(key_id) => builder.key_id(key_id),
            None => builder,
        }
        .build()
        .unwrap()
    };
    // Callers still on the old secret (under the default key id, the service id), and callers
    // already on the new one.
    let old = client(None, SECRET);
    let new = client(Some("billing-2026-12"), "the-new-secret");
    old.execute(Call::get("/a")).await.unwrap();
    new.execute(Call::get("/b")).await.unwrap();
    new.execute(Call::get("/c")).await.unwrap();
    let requests = server.requests();

    // During the overlap both keys verify, each named in the caller.
    let overlap = Verifier::new().service("billing", SECRET).key(
        "billing-2026-12",
        "billing",
        "the-new-secret",
    );
    let mut seen = Vec::new();
    for r in &requests {
        let caller = check(&overlap, r).await.unwrap();
        assert_eq!(caller.service_id(), "billing");
        seen.push(caller.key_id().to_owned());
    }
    assert_eq!(seen, ["billing", "billing-2026-12", "billing-2026-12"]);
    let usage = overlap.key_usage();
    let counts: Vec<(&str, u64)> = usage
        .iter()
        .map(|u| (u.key_id.as_str(), u.requests))
        .collect();
    assert_eq!(counts, [("billing", 1), ("billing-2026-12", 2)]);

    // Once the old key is retired, its signatures are refused; the new ones still pass.
    let after = Verifier::new().key("billing-2026-12", "billing", "the-new-secret");
    let retired = check(&after, &requests[0]).await.unwrap_err();
    assert!(matches!(&retired, VerifyError::UnknownKey(Some(k)) if k == "billing"));
    assert_eq!(
        retired.to_string(),
        "no signature with a known key id (saw `billing`)"
    );
    check(&after, &requests[1]).await.unwrap();
    // The new key id with the old secret is not the new key.
    let confused = client(Some("billing-2026-12"), SECRET);
    confused.execute(Call::get("/d")).await.unwrap();
    let last = server.requests().pop().unwrap();
    assert!(matches!(
        check(&after, &last).await,
        Err(VerifyError::BadSignature)
    ));
}

/// An empty secret (an unset variable read as "") verifies nothing: not a request anyone could
/// sign with it, nor, under a key id given again, with the key it replaced.
#[tokio::test]
async fn a_key_with_an_empty_secret_verifies_nothing() {
    let r = genuine().await;
    let created = created_of(&r);
    let mut forged = r.clone();
    forged.sign_as(
        "comms",
        COVERED,
        &params(created, "billing", &"7".repeat(32)),
        "",
    );
    let empty = Verifier::new().service("billing", "").accept_legacy(true);
    assert!(matches!(
        check(&empty, &forged).await,
        Err(VerifyError::UnknownKey(_))
    ));
    assert!(empty.key_usage().is_empty());
    // Replacing a key with an empty secret leaves the key id with none.
    let replaced = Verifier::new()
        .service("billing", SECRET)
        .service("billing", "");
    assert!(check(&replaced, &r).await.is_err());
    assert!(check(&replaced, &forged).await.is_err());
    // And the genuine request still verifies where the key is set.
    check(&verifier(), &r).await.unwrap();
}
