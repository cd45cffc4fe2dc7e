// The shared body of the `unusual_traits` pass cases: without and with the `server` feature.

use comms::Error as CommsError;
use comms::service_client;

/// `comms::Error`, re-exported.
pub mod errors {
    pub use comms::Error;
}

/// A `Result` alias named otherwise.
pub type ApiResult<T> = Result<T, comms::Error>;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[deprecated(note = "use NewUser")]
pub struct OldUser {
    pub id: u64,
}

#[deprecated(note = "use UsersV2")]
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/a/<id>")]
    async fn a(&self, id: u64) -> ApiResult<u32>;

    #[get("/b")]
    async fn b(&self) -> Result<u32, errors::Error>;

    #[get("/c")]
    async fn c(&self) -> Result<u32, crate::errors::Error>;

    #[delete("/d")]
    async fn d(&self) -> Result<(), CommsError>;

    #[cfg(any())]
    #[get("/v2/users/<id>")]
    async fn user(&self, id: u64) -> Result<OldUser, CommsError>;

    #[cfg(not(any()))]
    #[get("/v1/users/<id>")]
    async fn user(&self, id: u64) -> Result<OldUser, CommsError>;

    #[post("/users")]
    async fn create(&self, #[body] user: OldUser) -> Result<OldUser, CommsError>;

    #[get("/e")]
    async fn e(self: &Self) -> Result<(), CommsError>;

    #[get("/p/<naïve>")]
    async fn p(&self, naïve: u32) -> Result<u32, CommsError>;

    #[get("/q")]
    async fn q(
        &self,
        #[cfg_attr(all(), allow(unused_variables))]
        #[query]
        q: u32,
    ) -> Result<u32, CommsError>;
}

#[allow(dead_code)]
async fn use_them(users: &UsersClient) -> Result<(), CommsError> {
    let a: u32 = users.a(1).await?;
    let b: u32 = users.b().await?;
    let c: u32 = users.c().await?;
    users.d().await?;
    let user: OldUser = users.user(a.into()).await?;
    let made: OldUser = users.create(user).await?;
    users.e().await?;
    let p: u32 = users.p(b + c).await?;
    let p = users.q(p).await?;
    let _ = (made.id, p);
    Ok(())
}
