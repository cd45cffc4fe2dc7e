//! A service that accepts signed calls: v2 from `comms` clients and, while callers migrate,
//! legacy signatures from Python `microservice_comms` clients.
//!
//! ```text
//! BILLING_SECRET=... ORDERS_SECRET=... cargo run --example service
//! ```
//!
//! It listens on `127.0.0.1:8080` (or `$PORT`) until Ctrl-C.

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
    let mut verifier = Verifier::new().accept_legacy(true);
    for (service, var) in [("billing", "BILLING_SECRET"), ("orders", "ORDERS_SECRET")] {
        match std::env::var(var) {
            Ok(secret) if !secret.is_empty() => verifier = verifier.service(service, secret),
            _ => eprintln!("{var} is not set: calls from `{service}` will be refused"),
        }
    }

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
    Json(json!({ "service": caller.service_id(), "signing": caller.signing().to_string() }))
}

async fn create_order(
    Extension(caller): Extension<Caller>,
    Json(order): Json<Value>,
) -> Json<Value> {
    Json(json!({ "created_by": caller.service_id(), "order": order }))
}
