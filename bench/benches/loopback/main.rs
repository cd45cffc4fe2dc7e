//! Loopback throughput, latency and client CPU per call: raw reqwest, `comms::Executor`, a
//! generated client, and reqwest-middleware + reqwest-retry, interleaved on the same in-process
//! hyper server, at concurrency 1, 64 and 256. Then a 50 ms server under 256 concurrent calls
//! to one host.
//!
//! `cargo bench -p comms-bench --bench loopback` (add `-- --quick` for a short run, `--shared`
//! to run server and clients on one multi-threaded runtime). `COMMS_BENCH_ONLY`,
//! `COMMS_BENCH_CALLS` and `COMMS_BENCH_LEVELS` narrow a run (see `main`).
//!
//! By default the server runs alone on one thread and every client on a single-threaded runtime
//! on another, the closest one machine gets to a client and a server on two hosts: the client
//! thread's CPU time per call is then what a call costs the caller, whatever the server spends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod clients;
mod otel;
#[path = "../support/mod.rs"]
mod support;

use clients::{Users as _, UsersClient, Variant, variants};

use bytes::Bytes;
use comms::__internals::Signer;
use comms::signing::{self, Secret};
use comms::{Call, Error, Executor, service_client};
use http::{HeaderName, HeaderValue};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use support::{cpu_time, this_thread};
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"id":1,"name":"Ada Lovelace"}"#;

/// The server thread's `/proc` entry, for its CPU time.
static SERVER_TASK: OnceLock<PathBuf> = OnceLock::new();

/// CPU time the calling thread has run.
fn thread_cpu() -> Option<Duration> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration())
}

/// A minimal hyper server: every request gets the same small JSON body after `delay`.
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

/// One round of one variant at one level of concurrency.
struct Sample {
    throughput: f64,
    latencies: Vec<Duration>,
    /// The calling thread's CPU time per call (single-threaded client runtime only).
    client_cpu: Option<Duration>,
    /// The share of the wall time the server thread was on a CPU.
    server_busy: Option<f64>,
}

/// `total` calls spread over `concurrency` tasks.
async fn run(variant: &Variant, concurrency: usize, total: usize, split: bool) -> Sample {
    let server = SERVER_TASK.get();
    let cpu_before = split.then(thread_cpu).flatten();
    let server_before = server.and_then(|s| cpu_time(s));
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
    let client_cpu = cpu_before
        .zip(split.then(thread_cpu).flatten())
        .map(|(before, after)| (after - before) / total as u32);
    let server_busy = server_before
        .zip(server.and_then(|s| cpu_time(s)))
        .map(|(before, after)| (after - before).as_secs_f64() / elapsed.as_secs_f64());
    Sample {
        throughput: total as f64 / elapsed.as_secs_f64(),
        latencies,
        client_cpu,
        server_busy,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied()
}

fn main() {
    let otel = otel::install();
    // `COMMS_BENCH_TRACING=info` (or any level): record spans and events at that level, as a
    // service's logging would, into a sink. At INFO that is comms' warnings and none of its
    // spans, which are DEBUG. (Not with `--features otel`, which installs its own subscriber.)
    if let Some(level) = std::env::var("COMMS_BENCH_TRACING")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
    {
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::sink)
            .try_init()
            .expect("COMMS_BENCH_TRACING does not go with --features otel");
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let split = !args.iter().any(|a| a == "--shared");
    let (rounds, mut per_round) = if quick { (3, 2_000) } else { (7, 10_000) };
    if let Some(n) = std::env::var("COMMS_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        per_round = n;
    }
    // Default: the server alone on one thread, all clients on a single-threaded runtime on
    // another. `--shared`: server and clients on one runtime over all cores, so the server's
    // work competes with the clients'.
    let runtime = if split {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .unwrap();
    let server = if split {
        let server_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = server_runtime.handle().clone();
        std::thread::spawn(move || {
            let _ = SERVER_TASK.set(this_thread());
            server_runtime.block_on(std::future::pending::<()>())
        });
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
                // The three baselines (raw, hand-signed, comms-signed) stay unless profiling one
                // variant alone ("=name").
                Some(o) if o.starts_with('=') => v.name() == &o[1..],
                Some(o) => matches!(*i, 0 | 2 | 3) || v.name().contains(o),
                None => true,
            })
            .map(|(_, v)| v)
            .collect();
        println!(
            "loopback GET /users/1 with JSON decoding; {rounds} interleaved rounds of {per_round} calls"
        );
        println!("{otel}");
        println!(
            "machine: {} cores; {}\n",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            if split {
                "server alone on one thread, clients on a single-threaded runtime on another"
            } else {
                "server and clients share one multi-threaded runtime (--shared)"
            }
        );
        let position = |name: &str| variants.iter().position(|v| v.name() == name);
        let (raw, hand, floor) = (
            position("raw reqwest"),
            position("reqwest + hand signing"),
            position("reqwest + comms signing"),
        );
        // `COMMS_BENCH_LEVELS=1,64`: only those levels of concurrency.
        let levels: Vec<usize> = std::env::var("COMMS_BENCH_LEVELS")
            .ok()
            .map(|l| l.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 64, 256]);
        for concurrency in levels {
            let total = if concurrency == 1 {
                per_round / 4
            } else {
                per_round
            };
            // Warm up every pool at this concurrency.
            for v in &variants {
                run(v, concurrency, concurrency * 4, split).await;
            }
            let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                // Rotate the order each round so no variant always goes first.
                for k in 0..variants.len() {
                    let i = (k + round) % variants.len();
                    samples[i].push(run(&variants[i], concurrency, total, split).await);
                }
            }
            let medians: Vec<f64> = samples
                .iter()
                .map(|s| median(s.iter().map(|s| s.throughput).collect()).unwrap())
                .collect();
            // Each round runs every variant back to back, so a ratio is taken within a round
            // (where the machine's state is shared) and the median of those is reported: drift
            // between rounds cancels out.
            let per_round = |base: usize, i: usize| -> Vec<f64> {
                samples[i]
                    .iter()
                    .zip(&samples[base])
                    .map(|(v, b)| v.throughput / b.throughput)
                    .collect()
            };
            let ratio = |base: Option<usize>, i: usize| {
                base.map_or("-".to_owned(), |b| {
                    format!("{:.3}x", median(per_round(b, i)).unwrap())
                })
            };
            // How far single rounds strayed from that median: a ratio whose range straddles
            // a target is a ratio one run cannot settle.
            let range = |base: Option<usize>, i: usize| {
                base.filter(|&b| b != i).map_or("-".to_owned(), |b| {
                    let rounds = per_round(b, i);
                    let low = rounds.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!("{low:.2}-{high:.2}")
                })
            };
            println!("concurrency {concurrency}:");
            println!(
                "  {:<26} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>10} {:>8} {:>8}",
                "variant",
                "calls/s",
                "p50",
                "p99",
                "cpu/call",
                "server",
                "vs raw",
                "rounds",
                "vs hand",
                "vs floor"
            );
            for (i, v) in variants.iter().enumerate() {
                let mut latencies: Vec<Duration> = samples[i]
                    .iter()
                    .flat_map(|s| s.latencies.iter().copied())
                    .collect();
                latencies.sort();
                let cpu = median(samples[i].iter().filter_map(|s| s.client_cpu).collect());
                let busy = median(samples[i].iter().filter_map(|s| s.server_busy).collect());
                println!(
                    "  {:<26} {:>9.0} {:>9.1?} {:>9.1?} {:>9} {:>7} {:>8} {:>10} {:>8} {:>8}",
                    v.name(),
                    medians[i],
                    percentile(&latencies, 0.50),
                    percentile(&latencies, 0.99),
                    cpu.map_or("-".to_owned(), |c| format!("{:.2}µs", c.as_secs_f64() * 1e6)),
                    busy.map_or("-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
                    ratio(raw, i),
                    range(raw, i),
                    ratio(hand, i),
                    ratio(floor, i),
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
        let wall = median(walls).unwrap();
        println!(
            "50 ms server, 256 concurrent calls to one host: median wall {wall:.1} ms ({:.2}x the server latency; serialized would be {} ms)",
            wall / 50.0,
            256 * 50
        );
    });
}
