//! A service that cannot be served (not `Clone`, or not implementing the trait) is one error,
//! at `into_router`, saying what a served service must be.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn name(&self, id: u64) -> Result<String, Error>;
}

struct NotClone;

impl Users for NotClone {
    async fn name(&self, id: u64) -> Result<String, Error> {
        Ok(id.to_string())
    }
}

#[derive(Clone)]
struct NotUsers;

fn main() {
    let _ = UsersServer::new(NotClone).unverified().into_router();
    let _ = UsersServer::new(NotUsers).into_router();
}
