//! A trait that is only called says `server = false`: with the `server` feature on (as Cargo
//! turns it on for a whole build), its types need not parse back, and no server is generated.

use comms::{Error, service_client};
use serde::Serialize;

/// Sent, never received here: no `Deserialize`.
#[derive(Serialize)]
pub struct NewUser {
    pub name: String,
}

/// A query value written with `Display`, and no `FromStr`.
pub struct Tag(&'static str);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[service_client(
    base_url = "http://users:8080",
    service_id = "billing",
    secret_env = "USERS_SECRET",
    server = false
)]
pub trait Users {
    #[post("/users")]
    async fn create(&self, #[body] user: &NewUser, #[query] tag: Tag) -> Result<u64, Error>;
}

/// Beside it, a trait served as usual.
#[service_client(
    base_url = "http://audit:8080",
    service_id = "billing",
    secret_env = "AUDIT_SECRET",
    server = true
)]
pub trait Audit {
    #[get("/events/<id>")]
    async fn event(&self, id: u64) -> Result<String, Error>;
}

#[derive(Clone)]
struct AuditImpl;

impl Audit for AuditImpl {
    async fn event(&self, id: u64) -> Result<String, Error> {
        Ok(id.to_string())
    }
}

fn main() {
    let _client: fn() -> Result<UsersClient, Error> = UsersClient::new;
    let _router: axum::Router = AuditServer::new(AuditImpl).unverified().into_router();
}
