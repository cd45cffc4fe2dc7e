//! A bare `Error` names whatever `Error` is in scope: another crate's is reported once, at the
//! return type, and code calling the client has nothing more to report.

use comms::service_client;
use std::io::Error;

#[derive(serde::Deserialize)]
pub struct User {
    pub id: u64,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<User, Error>;
}

#[allow(dead_code)]
async fn use_it(users: &UsersClient) -> Result<u64, comms::Error> {
    Ok(users.user(1).await?.id)
}

fn main() {}
