//! What fleet-wide state costs per request: verification with the in-memory nonce store
//! against the Redis one (one `SET NX EX` round trip), on a `redis-server` this bench starts.
//!
//! `cargo bench -p comms-bench --bench fleet` (needs `redis-server` on the PATH)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use comms::http::{HeaderMap, HeaderValue, Method, Uri};
use comms::redis::RedisNonceStore;
use comms::signing::{self, Secret};
use comms::verify::Verifier;

fn signed(n: u64, secret: &Secret) -> HeaderMap {
    let nonce = format!("{n:032x}");
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hash = signing::content_sha256(b"");
    let sts = signing::v2_string_to_sign("GET", "/users/1", "", "billing", ts, &nonce, &hash);
    let mut h = HeaderMap::new();
    h.insert("x-service-id", HeaderValue::from_static("billing"));
    h.insert("x-timestamp", HeaderValue::from(ts));
    h.insert("x-nonce", HeaderValue::from_str(&nonce).unwrap());
    h.insert("x-content-sha256", HeaderValue::from_str(&hash).unwrap());
    h.insert(
        "x-signature",
        HeaderValue::from_str(&signing::sign_v2(secret, &sts)).unwrap(),
    );
    h
}

async fn measure(name: &str, verifier: Arc<Verifier>, offset: u64, concurrency: u64) {
    const PER_TASK: u64 = 5_000;
    let secret = Secret::from("bench-secret");
    let requests: Vec<Vec<HeaderMap>> = (0..concurrency)
        .map(|t| {
            (0..PER_TASK)
                .map(|i| signed(offset + t * PER_TASK + i, &secret))
                .collect()
        })
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
        println!("v2 verification of a bodiless GET, loopback Redis");
        let memory = Arc::new(Verifier::new().service("billing", "bench-secret"));
        let redis = Arc::new(
            Verifier::new()
                .service("billing", "bench-secret")
                .nonce_store(RedisNonceStore::new(&url).unwrap().namespace("bench")),
        );
        let mut offset = 0;
        for concurrency in [1, 64] {
            measure("in-memory nonce store", memory.clone(), offset, concurrency).await;
            offset += 1 << 40;
            measure("Redis nonce store", redis.clone(), offset, concurrency).await;
            offset += 1 << 40;
        }
    });
    let _ = child.kill();
    let _ = child.wait();
}
