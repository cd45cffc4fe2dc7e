//! Two methods of one verb whose routes differ only in their parameters' names would be one
//! route of the server's, and a parameter beside a trailing one at one place cannot be routed
//! apart: the second of such a pair is refused at its route. Other verbs, or other names at
//! one place of the path, are served.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Accounts {
    #[get("/accounts/<id>")]
    async fn get(&self, id: u32) -> Result<u32, Error>;

    #[delete("/accounts/<account_id>")]
    async fn close(&self, account_id: u32) -> Result<(), Error>;

    #[get("/accounts/<name>")]
    async fn by_name(&self, name: &str) -> Result<u32, Error>;

    #[get("/files/<path..>")]
    async fn file(&self, path: &str) -> Result<String, Error>;

    #[get("/files/<rest..>")]
    async fn file_again(&self, rest: &str) -> Result<String, Error>;

    #[get("/accounts/<id>/")]
    async fn with_slash(&self, id: u32) -> Result<u32, Error>;

    #[get("/blobs/<id>")]
    async fn blob(&self, id: u32) -> Result<String, Error>;

    #[get("/blobs/<rest..>")]
    async fn blob_path(&self, rest: &str) -> Result<String, Error>;

    // Whatever the verb: a router matches the path first.
    #[post("/blobs/<rest..>")]
    async fn put_blob(&self, rest: &str) -> Result<String, Error>;

    // Under `#[cfg]`s that both hold.
    #[cfg(all())]
    #[get("/codes/<id>")]
    async fn code(&self, id: u32) -> Result<u32, Error>;

    #[get("/codes/<name>")]
    async fn code_by_name(&self, name: &str) -> Result<u32, Error>;
}

fn main() {}
