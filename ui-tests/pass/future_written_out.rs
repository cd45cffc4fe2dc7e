//! A method written as what `async fn` means, `fn .. -> impl Future<Output = ..> + Send` (the
//! form the generated trait has), is the `async fn` it stands for; the imports its bounds are
//! written with are used.
#![deny(unused_imports)]

use std::future::Future;

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    fn get(&self, id: u64) -> impl Future<Output = Result<String, Error>> + Send;

    #[delete("/users/<id>")]
    fn remove(&self, id: u64) -> impl Future<Output = Result<(), Error>>;

    // A timeout with its integer type.
    #[get("/ping", timeout_ms = 500u64)]
    async fn ping(&self) -> Result<(), Error>;
}

fn main() {
    fn is_users<T: Users>() {}
    is_users::<UsersClient>();
}
