//! A route parameter is one value in every request's path: an `Option` or a list filling one
//! is refused at its type, saying what to write instead (a `#[query]`, two methods, the
//! segments joined), rather than only that it does not implement `Display`.

use comms::{Error, service_client};

#[service_client(base_url = "http://files:8080", service_id = "billing", secret_env = "S")]
pub trait Files {
    #[get("/users/<id>")]
    async fn optional(&self, id: Option<u64>) -> Result<(), Error>;

    #[get("/tags/<tags>")]
    async fn list(&self, tags: &[String]) -> Result<(), Error>;

    #[get("/files/<path..>")]
    async fn segments(&self, path: Vec<String>) -> Result<(), Error>;

    // One value is fine, whatever its name.
    #[get("/options/<option>")]
    async fn named_option(&self, option: &str) -> Result<(), Error>;
}

fn main() {}
