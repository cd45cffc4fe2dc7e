//! A route named rather than written out (a shared constant, a macro building it) has no value
//! yet when the attribute checks it against the arguments: each is told so, at it.

use comms::{Error, service_client};

pub const USERS: &str = "/users";

pub mod routes {
    pub const USER: &str = "/users/<id>";
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get(USERS)]
    async fn list(&self) -> Result<Vec<String>, Error>;

    #[get(routes::USER, timeout_ms = 500)]
    async fn get_user(&self, id: u64) -> Result<String, Error>;

    #[delete(concat!("/users", "/<id>"))]
    async fn delete_user(&self, id: u64) -> Result<(), Error>;
}

fn main() {}
