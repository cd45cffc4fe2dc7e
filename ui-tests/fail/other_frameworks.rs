//! What other frameworks write, told what comms writes instead: argument attributes on the
//! method, axum 0.7's `:id`, Rocket's `data = "<name>"`, `#[async_trait]`, a doc comment on an
//! argument, another crate's `Response`, axum's `Json<T>` around a body or an answer, written
//! out or imported.

use comms::{Error, service_client};

pub struct Response<T>(pub T);
mod axum {
    pub struct Json<T>(pub T);
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/a")]
    #[header("X-Api-Version")]
    async fn header_on_method(&self) -> Result<(), Error>;

    #[get("/b")]
    #[query]
    async fn query_on_method(&self, page: u32) -> Result<(), Error>;

    #[get("/users/:id")]
    async fn colon(&self, id: u64) -> Result<(), Error>;

    #[get("/files/*path")]
    async fn star(&self, path: &str) -> Result<(), Error>;

    #[get("/c/<id>")]
    async fn documented(
        &self,
        /// the user's id
        id: u64,
    ) -> Result<(), Error>;

    #[get("/d")]
    async fn foreign_response(&self) -> Result<Response<Vec<u8>>, Error>;

    #[get("/e")]
    async fn reqwest_response(&self) -> Result<comms::reqwest::Response, Error>;

    #[post("/f", data = "<count>")]
    async fn rocket_data(&self, count: u32) -> Result<(), Error>;

    #[post("/g")]
    async fn json_body(&self, #[body] user: &axum::Json<String>) -> Result<(), Error>;

    #[get("/h")]
    async fn json_answer(&self) -> Result<axum::Json<String>, Error>;
}

/// Below `#[service_client]`, `#[async_trait]` reaches it as written.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
#[async_trait::async_trait]
pub trait Below {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

/// Above it, `#[async_trait]` hands it this.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Above {
    #[get("/a")]
    fn a<'life0, 'async_trait>(
        &'life0 self,
    ) -> ::core::pin::Pin<
        Box<dyn ::core::future::Future<Output = Result<(), Error>> + Send + 'async_trait>,
    >
    where
        'life0: 'async_trait,
        Self: 'async_trait;
}

fn main() {}

/// A `Json<T>` imported and written bare, which the macro cannot tell from a type of the
/// user's own: the compiler's error says that a method returns `T` itself.
mod bare_json {
    use super::axum::Json;
    use comms::{Error, service_client};

    #[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
    pub trait Bare {
        #[get("/i")]
        async fn json_answer(&self) -> Result<Json<String>, Error>;
    }
}
