//! A misspelt verb or argument attribute is reported once, with the name it is close to, and
//! nothing else is reported about its method or argument. So is another framework's argument
//! attribute (`#[json]`, `#[path]`), which Rust does not allow on an argument either.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[gett("/a")]
    async fn a(&self) -> Result<(), Error>;

    #[GET("/b")]
    async fn b(&self) -> Result<(), Error>;

    #[get("/c")]
    async fn c(&self, #[qurey] page: u32) -> Result<(), Error>;

    #[post("/d/<id>")]
    async fn d(&self, #[path] id: u64, #[json] user: String) -> Result<(), Error>;

    // Method attributes as other frameworks write them.
    #[options("/e")]
    async fn e(&self) -> Result<(), Error>;

    #[post("/f")]
    #[idempotent]
    async fn f(&self) -> Result<(), Error>;
}

fn main() {}
