//! What fleet-wide state costs per request: verification with the in-memory nonce store
//! against the Redis one (one `SET NX PX` round trip), on a `redis-server` this bench starts.
//!
//! `cargo bench -p comms-bench --bench fleet` (needs `redis-server` on the PATH)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comms::__internals::Signer;
use comms::Signing;
use comms::http::{HeaderMap, Method, Uri};
use comms::redis::RedisNonceStore;
use comms::verify::Verifier;

/// A bodiless GET to `/users/1`, freshly signed by `billing`.
fn signed(signer: &Signer) -> HeaderMap {
    let url = reqwest::Url::parse("http://users.internal/users/1").unwrap();
    let mut request = reqwest::Request::new(Method::GET, url);
    signer.sign_request(&mut request).unwrap();
    std::mem::take(request.headers_mut())
}

async fn measure(name: &str, verifier: Arc<Verifier>, concurrency: u64) {
    const PER_TASK: u64 = 5_000;
    let signer = Signer::new(
        "http://users.internal",
        "billing",
        "bench-secret",
        Signing::Rfc9421,
    );
    let requests: Vec<Vec<HeaderMap>> = (0..concurrency)
        .map(|_| (0..PER_TASK).map(|_| signed(&signer)).collect())
        .collect();
    let uri: Uri = "/users/1".parse().unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|batch| {
            let (verifier, uri) = (verifier.clone(), uri.clone());
            tokio::spawn(async move {
                for h in batch {
                    verifier.verify(&Method::GET, &uri, &h, b"").await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = concurrency * PER_TASK;
    let per = started.elapsed() / total as u32;
    println!(
        "  {name:<28} concurrency {concurrency:>3}: {:>8.0} verifications/s, {:>7.1?} each",
        total as f64 / started.elapsed().as_secs_f64(),
        per
    );
}

fn main() {
    let port = 6391;
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("redis://127.0.0.1:{port}/");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("RFC 9421 verification of a bodiless GET, loopback Redis");
        let memory = Arc::new(Verifier::new().service("billing", "bench-secret"));
        let redis = Arc::new(
            Verifier::new()
                .service("billing", "bench-secret")
                .nonce_store(RedisNonceStore::new(&url).unwrap().namespace("bench")),
        );
        for concurrency in [1, 64] {
            measure("in-memory nonce store", memory.clone(), concurrency).await;
            measure("Redis nonce store", redis.clone(), concurrency).await;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
