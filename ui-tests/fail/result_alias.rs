//! A return type written `Result<T>` is an alias, which must stand for
//! `Result<T, comms::Error>`: one standing for another error is reported once, at it, and the
//! standard `Result` with one argument is the compiler's own error.

use comms::service_client;

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn io(&self, id: u64) -> std::io::Result<String>;

    #[get("/other/<id>")]
    async fn plain(&self, id: u64) -> Result<String>;
}

fn main() {}
