//! Requests per second through a generated server, against a hand-written axum handler doing
//! the same work behind `VerifyLayer`: what the generated routes, argument parsing, per-request
//! task and result conversion cost over writing the handler by hand.
//!
//! `cargo bench -p comms-bench --bench server`
//!
//! Both servers run on one single-threaded runtime on their own thread; a generated client,
//! signing every request, drives them from the other thread at 64 calls in flight, in
//! interleaved rounds. `server cpu` is the server thread's CPU time per request.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::get;
use axum::{Extension, Json, Router};
use comms::verify::{Caller, Verifier, VerifyLayer};
use comms::{BreakerConfig, Error, RetryConfig, service_client};
use serde::{Deserialize, Serialize};
use support::{cpu_time, this_thread};

#[derive(Debug, Deserialize, Serialize)]
struct User {
    id: u64,
    name: String,
    seen_by: String,
}

#[service_client(
    base_url = "http://127.0.0.1:1",
    service_id = "bench",
    secret_env = "BENCH_SECRET"
)]
trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64, #[query] fields: Option<String>) -> Result<User, Error>;
}

#[derive(Clone)]
struct UsersImpl;

impl Users for UsersImpl {
    async fn get_user(&self, id: u64, _fields: Option<String>) -> Result<User, Error> {
        Ok(User {
            id,
            name: "Ada Lovelace".into(),
            seen_by: comms::server::caller().service_id().to_owned(),
        })
    }
}

#[derive(Deserialize)]
struct Fields {
    #[allow(dead_code)]
    fields: Option<String>,
}

/// The same work as `UsersImpl::get_user`, written as an axum handler behind `VerifyLayer`.
async fn hand_written(
    Path(id): Path<u64>,
    axum::extract::Query(_fields): axum::extract::Query<Fields>,
    Extension(caller): Extension<Caller>,
) -> Json<User> {
    Json(User {
        id,
        name: "Ada Lovelace".into(),
        seen_by: caller.service_id().to_owned(),
    })
}

const SECRET: &str = "bench-secret";
const CONCURRENCY: usize = 64;

fn verifier() -> Verifier {
    Verifier::new().service("bench", SECRET)
}

async fn round(client: &UsersClient, calls: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    let user = client.get_user(1, Some("name".into())).await.unwrap();
                    assert_eq!(user.seen_by, "bench");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, calls) = if quick { (3, 2_000) } else { (7, 10_000) };

    // Both servers on one thread of their own.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let generated = UsersServer::new(UsersImpl)
                .verifier(verifier())
                .into_router();
            let hand = Router::new()
                .route("/users/{id}", get(hand_written))
                .layer(VerifyLayer::new(verifier()));
            let mut addrs = Vec::new();
            for app in [generated, hand] {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addrs.push(listener.local_addr().unwrap());
                tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            }
            addr_tx.send((addrs, this_thread())).unwrap();
            std::future::pending::<()>().await
        });
    });
    let (addrs, server_thread) = addr_rx.recv().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = |addr: std::net::SocketAddr| {
            UsersClient::builder()
                .base_url(format!("http://{addr}"))
                .secret(SECRET)
                .retry(RetryConfig::none())
                .breaker(BreakerConfig::disabled())
                .build()
                .unwrap()
        };
        let clients = [client(addrs[0]), client(addrs[1])];
        for c in &clients {
            round(c, calls / 5).await; // warm-up
        }
        let mut rates = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        let mut ratios = Vec::new();
        for r in 0..rounds {
            let mut this_round = [0.0; 2];
            // Alternate which goes first, so drift within a round cancels out.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let before = cpu_time(&server_thread);
                let elapsed = round(&clients[i], calls).await;
                let after = cpu_time(&server_thread);
                let rate = calls as f64 / elapsed.as_secs_f64();
                this_round[i] = rate;
                rates[i].push(rate);
                if let (Some(b), Some(a)) = (before, after) {
                    cpu[i].push((a - b).as_secs_f64() * 1e6 / calls as f64);
                }
            }
            ratios.push(this_round[0] / this_round[1]);
        }
        println!(
            "signed GET /users/1?fields=name, {CONCURRENCY} in flight, {rounds} interleaved rounds of {calls} calls"
        );
        println!("  server                          calls/s   server cpu/request");
        for (i, name) in ["generated server", "axum handler + VerifyLayer"]
            .iter()
            .enumerate()
        {
            let cpu_text = if cpu[i].is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}µs", median(cpu[i].clone()))
            };
            println!(
                "  {name:<30} {:>8.0}   {cpu_text:>10}",
                median(rates[i].clone())
            );
        }
        let spread = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  generated vs hand-written: {:.3}x (median of per-round ratios; rounds {:.2}-{:.2})",
            median(ratios),
            spread.0,
            spread.1
        );
    });
}
