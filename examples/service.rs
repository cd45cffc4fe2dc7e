//! A service that accepts signed calls: RFC 9421 signatures from `comms` clients (or any RFC 9421
//! library, such as Python's `requests-http-signature`) and, while callers migrate, legacy
//! signatures from Python `microservice_comms` clients.
//!
//! ```text
//! BILLING_SECRET=... ORDERS_SECRET=... cargo run --example service
//! ```
//!
//! It listens on `127.0.0.1:8080` (or `$PORT`) until Ctrl-C. `ACCEPT_LEGACY=0` turns legacy
//! signatures off, the last step of a migration; `BILLING_NEXT_KEY_ID` and
//! `BILLING_NEXT_SECRET` add a second key for `billing`, as during a secret rotation.

use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use comms::verify::{Caller, Verifier, VerifyLayer};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "comms=info".into()),
        )
        .init();

    // One entry per calling service. Secrets come from the environment, never from code.
    let accept_legacy = std::env::var("ACCEPT_LEGACY").map_or(true, |v| v != "0");
    let mut verifier = Verifier::new().accept_legacy(accept_legacy);
    for (service, var) in [("billing", "BILLING_SECRET"), ("orders", "ORDERS_SECRET")] {
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

    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/orders", post(create_order))
        .layer(VerifyLayer::new(verifier).max_body_bytes(64 * 1024));

    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    Json(json!({
        "service": caller.service_id(),
        "key_id": caller.key_id(),
        "signing": caller.signing().to_string(),
    }))
}

async fn create_order(
    Extension(caller): Extension<Caller>,
    Json(order): Json<Value>,
) -> Json<Value> {
    Json(json!({ "created_by": caller.service_id(), "order": order }))
}
