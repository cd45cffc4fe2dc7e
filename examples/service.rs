//! A service that accepts signed calls: RFC 9421 signatures from `comms` clients (or any RFC 9421
//! library, such as Python's `requests-http-signature`) and, while callers migrate, legacy
//! signatures from Python `microservice_comms` clients.
//!
//! ```text
//! BILLING_SECRET=... SHIPPING_SECRET=... cargo run --example service
//! ```
//!
//! It serves the `Orders` trait with the server generated from it (feature `server`), and
//! listens on `127.0.0.1:8080` (or `$PORT`) until Ctrl-C. `ACCEPT_LEGACY=1` takes legacy
//! signatures too, the first step of a migration (they are off otherwise: a legacy request has
//! no nonce, so it can be replayed within the skew window); `BILLING_NEXT_KEY_ID` and
//! `BILLING_NEXT_SECRET` add a second key for `billing`, as during a secret rotation.

use comms::verify::Verifier;
use comms::{Error, service_client};
use serde_json::{Value, json};

/// The orders service's contract: the same trait gives its callers `OrdersClient` and this
/// service `OrdersServer`.
///
/// A caller's side of one secret is named for the service it calls, this side's for the
/// service calling: `OrdersClient`, in the billing service, signs as `billing` with its
/// `ORDERS_SECRET`, which this service checks against its `BILLING_SECRET`. The two hold the
/// same secret (to try the client against this example: `ORDERS_SECRET=$BILLING_SECRET`).
#[service_client(
    base_url = "http://127.0.0.1:8080",
    service_id = "billing",
    secret_env = "ORDERS_SECRET"
)]
pub trait Orders {
    /// Who the service sees calling.
    #[get("/whoami")]
    async fn whoami(&self) -> Result<Value, Error>;

    /// Takes an order.
    #[post("/orders", idempotent)]
    async fn create_order(&self, #[body] order: &Value) -> Result<Value, Error>;
}

#[derive(Clone)]
struct OrdersImpl;

impl Orders for OrdersImpl {
    async fn whoami(&self) -> Result<Value, Error> {
        let caller = comms::server::caller();
        Ok(json!({
            "service": caller.service_id(),
            "key_id": caller.key_id(),
            "signing": caller.signing().to_string(),
        }))
    }

    async fn create_order(&self, order: &Value) -> Result<Value, Error> {
        if !order.is_object() {
            return Err(Error::bad_request("an order is a JSON object"));
        }
        Ok(json!({ "created_by": comms::server::caller().service_id(), "order": order }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "comms=info".into()),
        )
        .init();

    // One entry per calling service. Secrets come from the environment, never from code.
    let accept_legacy = std::env::var("ACCEPT_LEGACY").is_ok_and(|v| v == "1");
    let mut verifier = Verifier::new().accept_legacy(accept_legacy);
    for (service, var) in [
        ("billing", "BILLING_SECRET"),
        ("shipping", "SHIPPING_SECRET"),
    ] {
        match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => verifier = verifier.service(service, secret),
            _ => eprintln!("{var} is not set: calls from `{service}` will be refused"),
        }
    }
    if let (Ok(key_id), Ok(secret)) = (
        std::env::var("BILLING_NEXT_KEY_ID"),
        std::env::var("BILLING_NEXT_SECRET"),
    ) {
        verifier = verifier.key(key_id, "billing", secret);
    }
    println!(
        "legacy signatures are {}",
        if accept_legacy { "accepted" } else { "refused" }
    );

    let app = OrdersServer::new(OrdersImpl)
        .verifier(verifier)
        .max_body_bytes(64 * 1024)
        .into_router();

    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    comms::server::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
