//! With the `server` feature, an argument the client can send but the server cannot hand
//! over (an `impl Trait`, a `'static` reference) is refused at its type.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn by_display(&self, id: impl std::fmt::Display + Send + Sync) -> Result<(), Error>;

    #[get("/by-dyn/<id>")]
    async fn by_dyn(&self, id: &(dyn std::fmt::Display + Send + Sync)) -> Result<(), Error>;

    #[get("/names/<name>")]
    async fn by_static(&self, name: &'static str) -> Result<(), Error>;

    #[get("/optional")]
    async fn optional_ref(&self, #[header("X-A")] a: &Option<&str>) -> Result<(), Error>;

    // Read from the body, a value owns its data (a `&` to the whole is still lent).
    #[post("/notes")]
    async fn note(&self, #[body] text: Option<&str>) -> Result<(), Error>;

    #[post("/tags")]
    async fn tags(&self, #[body] tags: &Vec<&str>) -> Result<(), Error>;

    // What to write instead is the type the reference lends.
    #[post("/users")]
    async fn user(&self, #[body] user: Option<&User>) -> Result<(), Error>;

    #[post("/bytes")]
    async fn bytes(&self, #[form] form: (u32, &[u8])) -> Result<(), Error>;

    #[post("/paths")]
    async fn paths(&self, #[body] paths: Vec<&std::path::Path>) -> Result<(), Error>;
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: u64,
}

/// A type with no `FromStr`, behind a slice: reported at the type written.
pub struct Opaque;

impl std::fmt::Display for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("opaque")
    }
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Slices {
    #[get("/slices")]
    async fn slices(&self, #[query] items: &[Opaque]) -> Result<(), Error>;
}

fn main() {}
