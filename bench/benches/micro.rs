//! Micro-benchmarks of the per-call work: signing, verification, the nonce store at fleet
//! load, breaker admission, backoff.
//!
//! `cargo bench -p comms-bench --bench micro`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, UNIX_EPOCH};

use comms::__internals::{Breaker, Signer, backoff_delay};
use comms::Signing;
use comms::http::{HeaderMap, HeaderValue, Method, Uri};
use comms::verify::{MemoryNonceStore, NonceStore, Verifier};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};

/// A request as the executor would build it, to be signed.
fn request(method: Method, url: &reqwest::Url, body: &[u8]) -> reqwest::Request {
    let mut request = reqwest::Request::new(method, url.clone());
    if !body.is_empty() {
        request.headers_mut().insert(
            comms::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        *request.body_mut() = Some(reqwest::Body::from(body.to_vec()));
    }
    request
}

fn signing(c: &mut Criterion) {
    let base = "http://orders.internal:8080";
    let rfc9421 = Signer::new(base, "billing", "bench-secret", Signing::Rfc9421);
    let legacy = Signer::new(base, "billing", "bench-secret", Signing::Legacy);
    let url = reqwest::Url::parse("http://orders.internal:8080/api/v1/orders?b=2&a=1").unwrap();
    let mut group = c.benchmark_group("sign");
    for (name, signer, size) in [
        ("rfc9421/empty", &rfc9421, 0usize),
        ("rfc9421/1KiB", &rfc9421, 1024),
        ("rfc9421/64KiB", &rfc9421, 64 * 1024),
        ("legacy", &legacy, 0),
    ] {
        let body = vec![b'x'; size];
        group.throughput(if size > 0 {
            Throughput::Bytes(size as u64)
        } else {
            Throughput::Elements(1)
        });
        // The request is built outside the timing; what is timed is the call's digest, its
        // covered-component list, the signature base, the HMAC and the headers that carry it.
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(Method::POST, &url, &body),
                |mut request| {
                    signer.sign_request(&mut request).unwrap();
                    request
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Polls a future that completes without waiting (the in-memory nonce store never waits).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("the in-memory verifier never waits"),
    }
}

fn verification(c: &mut Criterion) {
    // The store is bounded and refuses new nonces when full of live ones, so the benchmark
    // starts a fresh verifier now and then (in the untimed setup).
    let fresh = || Verifier::new().service("billing", "bench-secret");
    let verifier = std::cell::RefCell::new(fresh());
    let signer = Signer::new(
        "http://orders.internal:8080",
        "billing",
        "bench-secret",
        Signing::Rfc9421,
    );
    let counter = std::cell::Cell::new(0u64);
    let mut group = c.benchmark_group("verify");
    for (name, method, path, size) in [
        ("rfc9421/GET", Method::GET, "/users/1", 0usize),
        (
            "rfc9421/POST-1KiB",
            Method::POST,
            "/api/v1/orders?b=2&a=1",
            1024,
        ),
    ] {
        let body = vec![b'x'; size];
        let url = reqwest::Url::parse(&format!("http://orders.internal:8080{path}")).unwrap();
        let uri: Uri = path.parse().unwrap();
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // A fresh signature (and nonce) each time, so no request is a replay.
                    let n = counter.get() + 1;
                    counter.set(n);
                    if n.is_multiple_of(50_000) {
                        *verifier.borrow_mut() = fresh();
                    }
                    let mut request = request(method.clone(), &url, &body);
                    signer.sign_request(&mut request).unwrap();
                    std::mem::take(request.headers_mut())
                },
                |h: HeaderMap| ready(verifier.borrow().verify(&method, &uri, &h, &body)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The in-memory nonce store under 20,000 verified requests a second with the default 300 s
/// window, on a simulated clock: filled to its steady state (6 million live nonces), then one
/// fresh nonce per iteration with the clock 50 µs further on, so the state stays steady.
/// Prints how fast it filled (rebuilds included) and the bytes it holds per live nonce.
fn nonce_store(c: &mut Criterion) {
    const RATE: u64 = 20_000;
    const START_MS: u64 = 1_700_000_000_000;
    let store = MemoryNonceStore::default();
    let clock = std::cell::Cell::new(0u64);
    let when = |n: u64| {
        let now = UNIX_EPOCH + Duration::from_millis(START_MS + n * 1000 / RATE);
        // As the verifier passes it: created + max_skew + 1 s.
        let created = START_MS / 1000 + n / RATE;
        (now, UNIX_EPOCH + Duration::from_secs(created + 301))
    };
    let insert = |n: u64, nonce: &str| {
        let (now, keep_until) = when(n);
        ready(store.check_and_insert("billing", nonce, now, keep_until))
    };
    let live = |next: u64| {
        // Nonces created in the last 301 whole seconds before the clock's second are live.
        let now_s = (START_MS + next.saturating_sub(1) * 1000 / RATE) / 1000;
        let first_live = (now_s + 1).saturating_sub(301 + START_MS / 1000) * RATE;
        next - first_live.min(next)
    };

    // Filled when a benchmark of this group first runs, not when a filter leaves them out.
    let fill = || {
        if clock.get() > 0 {
            return;
        }
        let count = 400 * RATE;
        let started = Instant::now();
        for n in 0..count {
            assert!(insert(n, &format!("{n:032x}")).unwrap());
        }
        let took = started.elapsed();
        clock.set(count);
        println!(
            "nonce store: filled with {count} nonces over 400 simulated s in {took:.2?} \
             ({:.0} inserts/s, rebuilds included); {} live, {:.1} bytes per live nonce",
            count as f64 / took.as_secs_f64(),
            live(count),
            store.allocated_bytes() as f64 / live(count) as f64,
        );
    };

    c.bench_function("nonce-store/insert/6M-live", |b| {
        fill();
        b.iter_batched_ref(
            || {
                let n = clock.get();
                clock.set(n + 1);
                (n, format!("{n:032x}"))
            },
            |(n, nonce)| insert(*n, nonce).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // Replays of nonces accepted in the last few seconds.
    let recent = std::cell::OnceCell::new();
    let mut i = 0;
    c.bench_function("nonce-store/replay/6M-live", |b| {
        fill();
        let recent: &Vec<String> = recent.get_or_init(|| {
            (1..=1000)
                .map(|back| format!("{:032x}", clock.get() - back * 97))
                .collect()
        });
        b.iter(|| {
            i = (i + 1) % recent.len();
            let refused = !insert(clock.get(), &recent[i]).unwrap();
            debug_assert!(refused);
            refused
        })
    });
    let next = clock.get();
    if next > 0 {
        println!(
            "nonce store: after {next} nonces, {} live, {:.1} bytes per live nonce, {} refused",
            live(next),
            store.allocated_bytes() as f64 / live(next) as f64,
            store.refused_full(),
        );
    }
}

fn breaker(c: &mut Criterion) {
    let closed = Breaker::closed();
    c.bench_function("breaker/closed/1-thread", |b| {
        b.iter(|| closed.admit_and_succeed())
    });

    // The same admission while other threads hammer the same breaker.
    let shared = Arc::new(Breaker::closed());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // One hammering thread per other core: more would measure the scheduler, not the breaker.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let others: Vec<_> = (0..cores.saturating_sub(1).max(1))
        .map(|_| {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    black_box(shared.admit_and_succeed());
                }
            })
        })
        .collect();
    c.bench_function("breaker/closed/contended", |b| {
        b.iter(|| shared.admit_and_succeed())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in others {
        t.join().unwrap();
    }

    let open = Breaker::open();
    c.bench_function("breaker/open/admission", |b| b.iter(|| open.fail_fast()));

    // A whole call refused by an open breaker: `Executor::execute` returning `CircuitOpen`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dead = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    });
    let exec = comms::Executor::builder()
        .base_url(format!("http://{dead}"))
        .service_id("bench")
        .secret("bench-secret")
        .retry(comms::RetryConfig::none())
        .breaker(
            comms::BreakerConfig::default()
                .failure_threshold(1)
                .open_for(std::time::Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    let tripped = rt.block_on(exec.execute(comms::Call::get("/users/1")));
    assert!(matches!(tripped, Err(comms::Error::Transport { .. })));
    let fail_fast = || {
        let err = ready(exec.execute(comms::Call::get("/users/1"))).unwrap_err();
        debug_assert!(err.is_circuit_open());
        err
    };
    c.bench_function("breaker/open/fail-fast-call", |b| b.iter(fail_fast));

    // The same call under a subscriber logging at INFO, as most services run: the call's
    // `comms.call` span is DEBUG, so it should cost nothing here.
    let info = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(info, || {
        c.bench_function("breaker/open/fail-fast-call/info-subscriber", |b| {
            b.iter(fail_fast)
        });
    });
    // And under one that records every span but only INFO events: what the span costs once
    // something records it (`comms=debug`, or a tracing exporter that takes all spans).
    let spans = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() || *meta.level() <= tracing::Level::INFO
            })),
    );
    tracing::subscriber::with_default(spans, || {
        c.bench_function("breaker/open/fail-fast-call/span-recorded", |b| {
            b.iter(fail_fast)
        });
    });
}

fn backoff(c: &mut Criterion) {
    c.bench_function("backoff/delay", |b| b.iter(|| backoff_delay(black_box(3))));
}

criterion_group!(
    benches,
    signing,
    verification,
    nonce_store,
    breaker,
    backoff
);
criterion_main!(benches);
