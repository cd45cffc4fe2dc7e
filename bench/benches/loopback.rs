//! Loopback throughput and latency: raw reqwest, `comms::Executor`, a generated client, and
//! reqwest-middleware + reqwest-retry, interleaved on the same in-process server, at
//! concurrency 1, 64 and 256. Then a 50 ms server under 256 concurrent calls to one host.
//!
//! `cargo bench -p comms-bench --bench loopback` (add `-- --quick` for a short run).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use comms::{Call, Error, Executor, service_client};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct User {
    id: u64,
    name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "bench",
    secret_env = "BENCH_SECRET"
)]
trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;
}

const BODY: &[u8] = br#"{"id":1,"name":"Ada Lovelace"}"#;

/// A minimal hyper server: every request gets the same small JSON body after `delay`. It runs
/// on its own single-threaded runtime and OS thread, so that with `--split` the server and the
/// clients each get a core, as they would on two machines.
async fn serve(delay: Duration, server: &tokio::runtime::Handle) -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    server.spawn(async move {
        let listener = TcpListener::from_std(std_listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |_req| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                    response.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[derive(Clone)]
enum Variant {
    Raw(reqwest::Client, String),
    Executor(Executor),
    Generated(UsersClient),
    Middleware(reqwest_middleware::ClientWithMiddleware, String),
    RawTimeout(reqwest::Client, String),
    RawSign(reqwest::Client, String, Arc<comms::__internals::Signer>),
}

impl Variant {
    fn name(&self) -> &'static str {
        match self {
            Variant::Raw(..) => "raw reqwest",
            Variant::Executor(_) => "comms::Executor",
            Variant::Generated(_) => "generated client",
            Variant::Middleware(..) => "reqwest-middleware+retry",
            Variant::RawTimeout(..) => "reqwest + timeout",
            Variant::RawSign(..) => "reqwest + hand signing",
        }
    }

    /// One call: GET /users/1 and decode the JSON body.
    async fn call(&self) {
        let user: User = match self {
            Variant::Raw(client, url) => {
                let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
            Variant::Executor(e) => e
                .execute(Call::get("/users").segment(1))
                .await
                .unwrap()
                .json()
                .unwrap(),
            Variant::Generated(c) => c.get_user(1).await.unwrap(),
            Variant::RawSign(client, url, signer) => {
                // What a hand-rolled signed call sends: the same five headers, computed afresh.
                let mut nonce = [0u8; 16];
                getrandom::fill(&mut nonce).unwrap();
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let sig = signer.sign("GET", "/users/1", "", b"");
                let bytes = client
                    .get(url)
                    .header("x-service-id", "bench")
                    .header("x-timestamp", ts)
                    .header(
                        "x-nonce",
                        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    )
                    .header("x-content-sha256", comms::signing::EMPTY_SHA256)
                    .header("x-signature", sig)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
            Variant::RawTimeout(client, url) => {
                let bytes = tokio::time::timeout(Duration::from_secs(10), async {
                    client.get(url).send().await.unwrap().bytes().await.unwrap()
                })
                .await
                .unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
            Variant::Middleware(client, url) => {
                let bytes = client.get(url).send().await.unwrap().bytes().await.unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
        };
        std::hint::black_box(user);
    }
}

struct Sample {
    throughput: f64,
    latencies: Vec<Duration>,
}

/// `total` calls spread over `concurrency` tasks.
async fn run(variant: &Variant, concurrency: usize, total: usize) -> Sample {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (variant, next) = (variant.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(total / concurrency + 1);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t = Instant::now();
                    variant.call().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    Sample {
        throughput: total as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn variants(addr: SocketAddr) -> Vec<Variant> {
    let base = format!("http://{addr}");
    let url = format!("{base}/users/1");
    // Each variant gets its own pool, configured alike: no redirects, same idle policy.
    let client = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let executor = Executor::builder()
        .base_url(&base)
        .service_id("bench")
        .secret("bench-secret")
        .http_client(client())
        .build()
        .unwrap();
    let generated = UsersClient::builder()
        .base_url(&base)
        .secret("bench-secret")
        .http_client(client())
        .build()
        .unwrap();
    let policy = reqwest_retry::policies::ExponentialBackoff::builder().build_with_max_retries(3);
    let middleware = reqwest_middleware::ClientBuilder::new(client())
        .with(reqwest_retry::RetryTransientMiddleware::new_with_policy(
            policy,
        ))
        .build();
    vec![
        Variant::Raw(client(), url.clone()),
        Variant::Executor(executor),
        Variant::Generated(generated),
        Variant::Middleware(middleware, url.clone()),
        Variant::RawTimeout(client(), url.clone()),
        Variant::RawSign(
            client(),
            url,
            Arc::new(comms::__internals::Signer::new(
                "bench",
                "s",
                comms::Signing::V2,
            )),
        ),
    ]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, mut per_round) = if quick { (3, 2_000) } else { (7, 10_000) };
    if let Some(n) = std::env::var("COMMS_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        per_round = n;
    }
    // Default: server and clients share one runtime on all cores (the server's work is charged
    // to every variant alike). `--split`: one thread serves, one runtime thread calls.
    let split = std::env::args().any(|a| a == "--split");
    let mut client = tokio::runtime::Builder::new_multi_thread();
    if split {
        client.worker_threads(1);
    }
    let runtime = client.enable_all().build().unwrap();
    let server = if split {
        let server_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = server_runtime.handle().clone();
        std::thread::spawn(move || server_runtime.block_on(std::future::pending::<()>()));
        handle
    } else {
        runtime.handle().clone()
    };
    runtime.block_on(async {
        let addr = serve(Duration::ZERO, &server).await;
        let only = std::env::var("COMMS_BENCH_ONLY").ok();
        let variants: Vec<Variant> = variants(addr)
            .into_iter()
            .enumerate()
            .filter(|(i, v)| match only.as_deref() {
                // The baseline stays first unless profiling one variant alone ("=name").
                Some(o) if o.starts_with('=') => v.name() == &o[1..],
                Some(o) => *i == 0 || v.name().contains(o),
                None => true,
            })
            .map(|(_, v)| v)
            .collect();
        println!("loopback GET /users/1 with JSON decoding; {rounds} interleaved rounds of {per_round} calls");
        println!(
            "machine: {} cores; {}\n",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            if split { "server and clients on separate threads (--split)" } else { "server and clients share one runtime" }
        );
        for concurrency in [1usize, 64, 256] {
            let total = if concurrency == 1 { per_round / 4 } else { per_round };
            // Warm up every pool at this concurrency.
            for v in &variants {
                run(v, concurrency, concurrency * 4).await;
            }
            let mut throughputs = vec![Vec::new(); variants.len()];
            let mut latencies = vec![Vec::new(); variants.len()];
            for round in 0..rounds {
                // Rotate the order each round so no variant always goes first.
                for k in 0..variants.len() {
                    let i = (k + round) % variants.len();
                    let s = run(&variants[i], concurrency, total).await;
                    throughputs[i].push(s.throughput);
                    latencies[i].extend(s.latencies);
                }
            }
            println!("concurrency {concurrency}:");
            println!("  {:<26} {:>12} {:>10} {:>10} {:>9}", "variant", "calls/s", "p50", "p99", "vs raw");
            let medians: Vec<f64> = throughputs.into_iter().map(median).collect();
            for (i, v) in variants.iter().enumerate() {
                latencies[i].sort();
                println!(
                    "  {:<26} {:>12.0} {:>10.1?} {:>10.1?} {:>8.3}x",
                    v.name(),
                    medians[i],
                    percentile(&latencies[i], 0.50),
                    percentile(&latencies[i], 0.99),
                    medians[i] / medians[0],
                );
            }
            println!();
        }

        // 256 concurrent calls to one host that takes 50 ms to answer: the wall time must stay
        // near 50 ms, not grow with the number of calls.
        let slow = serve(Duration::from_millis(50), &server).await;
        let client = UsersClient::builder()
            .base_url(format!("http://{slow}"))
            .secret("bench-secret")
            .build()
            .unwrap();
        let mut walls = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let calls: Vec<_> = (0..256)
                .map(|_| {
                    let c = client.clone();
                    tokio::spawn(async move { c.get_user(1).await.unwrap() })
                })
                .collect();
            for call in calls {
                call.await.unwrap();
            }
            walls.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let wall = median(walls);
        println!("50 ms server, 256 concurrent calls to one host: median wall {wall:.1} ms ({:.2}x the server latency; serialized would be {} ms)", wall / 50.0, 256 * 50);
    });
}
