//! Every verb, argument kind, option and return kind together.

use comms::{Error, Response, service_client};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct User {
    pub id: u64,
}

#[derive(Serialize)]
pub struct NewUser {
    pub name: String,
}

/// A documented service.
#[service_client(
    base_url = "https://users.internal:8443/api/v1",
    service_id = "billing",
    secret_env = "USERS_SECRET",
    base_url_env = "USERS_URL",
    key_id_env = "USERS_KEY_ID",
    signing = "rfc9421",
)]
pub trait Users {
    /// Doc comments stay on the trait's methods.
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users")]
    async fn list(
        &self,
        #[query] page: u32,
        #[query(rename = "per-page")] per_page: Option<u32>,
        #[query] tags: Vec<String>,
        #[query] ids: &[u64],
    ) -> Result<Vec<User>, Error>;

    #[post("/users", idempotent)]
    async fn create(&self, #[body] user: &NewUser) -> Result<User, Error>;

    #[put("/users/<id>", timeout_ms = 500)]
    async fn replace(&self, id: u64, #[body] user: NewUser) -> Result<(), Error>;

    #[patch("/users/<id>", idempotent, timeout_ms = 250)]
    async fn rename(&self, id: u64, #[body] user: &NewUser) -> Result<(), comms::Error>;

    #[delete("/users/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;

    #[head("/users/<id>")]
    async fn exists(&self, id: u64) -> Result<Response, Error>;

    #[get("/files/<path..>")]
    async fn file(&self, path: &str) -> Result<comms::Response, Error>;

    #[get("/me")]
    async fn me(
        &self,
        #[header("X-Request-Id")] request_id: &str,
        #[header("X-Tenant")] tenant: Option<String>,
    ) -> Result<User, Error>;

    #[get("/kinds/<type>/")]
    async fn kinds(&self, r#type: &str) -> Result<serde_json::Value, Error>;

    #[get("/")]
    async fn root(&self) -> Result<(), Error>;
}

/// Legacy signing, and the smallest trait there is.
#[service_client(base_url = "http://legacy:80", service_id = "py", secret_env = "S", signing = "legacy")]
pub(crate) trait Legacy {
    #[get("/health")]
    async fn health(&self) -> Result<(), Error>;
}

fn assert_client<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}

fn main() {
    assert_client::<UsersClient>();
    assert_client::<LegacyClient>();
    let _builder = UsersClient::builder()
        .base_url("http://localhost:1")
        .secret("s")
        .service_id("other")
        .timeout(std::time::Duration::from_secs(1))
        .retry(comms::RetryConfig::default())
        .breaker(comms::BreakerConfig::default())
        .http_client(comms::shared_http_client().clone());
    let _ = LegacyClient::new();
}
