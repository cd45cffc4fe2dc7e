//! Nonce stores: one shared by two verifiers, one that is unreachable, and the memory store's bound.

use super::*;

/// A nonce store shared by two verifiers, standing in for a fleet-wide one. Like the Redis
/// store, it does not look nonces up without recording them (`contains` is the default).
#[derive(Clone, Default)]
pub(super) struct Shared {
    inner: Arc<MemoryNonceStore>,
    pub(super) calls: Arc<AtomicUsize>,
}

impl NonceStore for Shared {
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'a>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner
            .check_and_insert(service_id, nonce, now, keep_until)
    }
}

#[tokio::test]
async fn a_shared_store_stops_replays_across_verifiers() {
    let r = genuine().await;
    let store = Shared::default();
    let replica_a = verifier().nonce_store(store.clone());
    let replica_b = verifier().nonce_store(store.clone());
    check(&replica_a, &r).await.unwrap();
    assert!(matches!(
        check(&replica_b, &r).await,
        Err(VerifyError::Replayed)
    ));
    assert_eq!(store.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_store_fails_closed() {
    let r = genuine().await;
    let err = check(&verifier().nonce_store(comms_tests::DownNonceStore), &r)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::NonceStore(_)), "{err:?}");
}

#[tokio::test]
async fn the_memory_store_stays_bounded_under_a_million_nonces() {
    let store = MemoryNonceStore::with_capacity(10_000);
    let cap = store.capacity();
    let now = 1_000_000u64;
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let mut accepted = Vec::new();
    let mut refused = 0;
    // A flood of unique, live nonces: the store fills, then refuses; it never evicts.
    for i in 0..1_000_000u128 {
        let nonce = format!("{i:032x}");
        match store
            .check_and_insert("billing", &nonce, at(now), at(now + 300))
            .await
        {
            Ok(true) => {
                if accepted.len() < 100 {
                    accepted.push(nonce);
                }
            }
            Ok(false) => panic!("unique nonce {i} seen as a replay"),
            Err(_) => refused += 1,
        }
        if i % 100_000 == 0 {
            assert!(store.len() <= cap);
        }
    }
    assert!(store.len() <= cap, "{} > {cap}", store.len());
    assert!(refused >= 1_000_000 - cap);
    for nonce in &accepted {
        assert!(
            !store
                .check_and_insert("billing", nonce, at(now + 1), at(now + 301))
                .await
                .unwrap()
        );
    }
    // As time passes, expired nonces make room again.
    for i in 0..1_000_000u128 {
        let t = now + 300 + (i as u64 / 1_000);
        let nonce = format!("{:032x}", i + (1 << 100));
        let fresh = store
            .check_and_insert("billing", &nonce, at(t), at(t + 5))
            .await
            .unwrap();
        assert!(fresh, "nonce {i} refused at time {t}");
    }
    assert!(store.len() <= cap);
}
