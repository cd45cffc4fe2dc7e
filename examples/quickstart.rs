//! The whole of comms in one run: one trait, the client and the server generated from it, the
//! server verifying signatures, a typed error, a retried 503, a query struct and response
//! headers through a per-call view, and the circuit breaker opening when the service goes away
//! and closing when it comes back.
//!
//! ```text
//! cargo run --example quickstart
//! RUST_LOG=comms=info cargo run --example quickstart   # with the runtime's own events
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use comms::http::{HeaderName, HeaderValue, StatusCode};
use comms::verify::Verifier;
use comms::{BreakerConfig, CallOptions, Error, ResponseValue, RetryConfig, service_client};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the users service returns.
#[derive(Debug, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: u64,
    /// Who is asking, as the service authenticated them.
    pub seen_by: String,
    /// The user's name.
    pub name: String,
}

/// A search: each field a query pair, `None` left out, a `Vec` a repeated key.
#[derive(Debug, Serialize, Deserialize)]
pub struct Search {
    /// Names starting with this.
    #[serde(rename = "prefix")]
    pub name_prefix: Option<String>,
    /// Ids to look among.
    pub id: Vec<u64>,
}

/// The users service: the contract between the caller (`UsersClient`) and the service that
/// implements it (served by `UsersServer`).
#[service_client(
    base_url = "http://127.0.0.1:8080",
    service_id = "quickstart",
    secret_env = "QUICKSTART_USERS_SECRET"
)]
pub trait Users {
    /// One user by id.
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    /// An endpoint that fails once before it works.
    #[get("/flaky")]
    async fn flaky(&self) -> Result<(), Error>;

    /// Users matching `search`, with the total in an `X-Total` header.
    #[get("/users")]
    async fn search(
        &self,
        #[query(flatten)] search: &Search,
        #[header("X-Tenant")] tenant: Option<String>,
    ) -> Result<ResponseValue<Vec<User>>, Error>;
}

const SECRET: &str = "quickstart-shared-secret-of-32-bytes-or-more";

/// The service behind the trait.
#[derive(Clone, Default)]
struct UsersImpl {
    flaky_hits: Arc<AtomicUsize>,
}

impl Users for UsersImpl {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        let name = match id {
            1 => "Ada",
            2 => "Grace",
            _ => return Err(Error::not_found(format!("no user {id}"))),
        };
        Ok(User {
            id,
            // The verified caller of this request.
            seen_by: comms::server::caller().service_id().to_owned(),
            name: name.to_owned(),
        })
    }

    async fn flaky(&self) -> Result<(), Error> {
        if self.flaky_hits.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::from_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "warming up",
            ));
        }
        Ok(())
    }

    async fn search(
        &self,
        search: &Search,
        tenant: Option<String>,
    ) -> Result<ResponseValue<Vec<User>>, Error> {
        let seen_by = format!(
            "{} for {}",
            comms::server::caller().service_id(),
            tenant.unwrap_or_default()
        );
        let found: Vec<User> = [(1, "Ada"), (2, "Grace")]
            .into_iter()
            .filter(|(id, _)| search.id.is_empty() || search.id.contains(id))
            .filter(|(_, name)| {
                search
                    .name_prefix
                    .as_deref()
                    .is_none_or(|p| name.starts_with(p))
            })
            .map(|(id, name)| User {
                id,
                seen_by: seen_by.clone(),
                name: name.to_owned(),
            })
            .collect();
        let total = HeaderValue::from(found.len());
        Ok(ResponseValue::new(found).with_header(HeaderName::from_static("x-total"), total))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    // The service: the trait's server, verifying every request's signature.
    let service = UsersImpl::default();
    let flaky_hits = service.flaky_hits.clone();
    let app = UsersServer::new(service)
        .verifier(Verifier::new().service("quickstart", SECRET))
        .into_router();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, server) = spawn_server(listener, app.clone());
    println!("users service listening on http://{addr}, verifying signatures\n");

    // The client. `UsersClient::new()` would read QUICKSTART_USERS_SECRET; here the builder
    // points it at the local service instead.
    let users = UsersClient::builder()
        .base_url(format!("http://{addr}"))
        .secret(SECRET)
        .retry(RetryConfig::default().base_delay(Duration::from_millis(50)))
        .breaker(
            BreakerConfig::default()
                .failure_threshold(3)
                .open_for(Duration::from_secs(1)),
        )
        .build()?;

    let user = users.get_user(1).await?;
    println!(
        "1. a signed call:        get_user(1) -> {} (the service saw caller `{}`)",
        user.name, user.seen_by
    );

    match users.get_user(42).await {
        Err(Error::NotFound(e)) => println!(
            "2. a typed error:        get_user(42) -> Error::NotFound, {} with message {:?}",
            e.status(),
            e.message().unwrap_or_default()
        ),
        other => return Err(format!("expected NotFound, got {other:?}").into()),
    }

    users.flaky().await?;
    println!(
        "3. a retried 503:        flaky() -> Ok after {} attempts (503, then 200)",
        flaky_hits.load(Ordering::SeqCst)
    );

    // A view of the client for one tenant: its calls carry (and sign) the tenant's header and
    // take a tighter timeout; the client itself is unchanged.
    let tenant = users.with(
        CallOptions::new()
            .header("x-tenant", "acme")
            .timeout(Duration::from_secs(2)),
    );
    let search = Search {
        name_prefix: Some("G".into()),
        id: vec![1, 2],
    };
    let found = tenant.search(&search, None).await?;
    println!(
        "   request shapes:       search(prefix=G, id=[1, 2]) through a tenant's view -> {:?} \
         (X-Total {}, served to `{}`)",
        found.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        found.headers()["x-total"].to_str()?,
        found[0].seen_by
    );

    let unsigned = comms::shared_http_client()
        .get(format!("http://{addr}/users/1"))
        .send()
        .await?;
    println!(
        "   an unsigned request:  plain GET /users/1 -> {}",
        unsigned.status()
    );

    // The service shuts down (gracefully: its idle connections are closed, its listener
    // dropped). Each refused connection is retried and counts as a failure; after three in a
    // row the breaker opens, and calls fail fast without touching the network.
    let _ = stop.send(());
    server.await??;
    match users.get_user(1).await {
        Err(e @ Error::Transport { .. }) => {
            let cause = root_cause(&e);
            println!(
                "4. the service stops:    get_user(1) -> Error::Transport ({cause}) after 3 attempts,"
            );
            println!("                         and 3 failures in a row opened the breaker");
        }
        other => return Err(format!("expected a transport error, got {other:?}").into()),
    }
    let started = Instant::now();
    match users.get_user(1).await {
        Err(Error::CircuitOpen { retry_in, .. }) => println!(
            "   breaker open:         get_user(1) -> Error::CircuitOpen in {:?}, next probe in {:.1?}",
            started.elapsed(),
            retry_in
        ),
        other => return Err(format!("expected CircuitOpen, got {other:?}").into()),
    }

    // It comes back: after the open period one probe goes through, succeeds, and closes it.
    let listener = bind_again(addr).await?;
    let (_stop, _server) = spawn_server(listener, app);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let user = users.get_user(1).await?;
    println!(
        "5. the service returns:  the probe get_user(1) -> {}: breaker closed",
        user.name
    );
    let user = users.get_user(2).await?;
    println!("   traffic flows again:  get_user(2) -> {}", user.name);
    Ok(())
}

/// The innermost error of a chain (here: the refused connection).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Serves `app` with `comms::server::serve` until the returned sender is used (or dropped):
/// then it closes its idle connections and its listener, and the task ends.
fn spawn_server(
    listener: TcpListener,
    app: Router,
) -> (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>) {
    let (stop, stopped) = oneshot::channel();
    let server = comms::server::serve(listener, app).with_graceful_shutdown(async {
        let _ = stopped.await;
    });
    (stop, tokio::spawn(server.into_future()))
}

async fn bind_again(addr: SocketAddr) -> std::io::Result<TcpListener> {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return Ok(listener);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TcpListener::bind(addr).await
}
