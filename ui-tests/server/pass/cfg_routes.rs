//! Two methods of one route under `#[cfg]`s of which one holds: only one is compiled, so the
//! server has one route for it.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Users {
    #[cfg(all())]
    #[get("/users/<id>")]
    async fn get(&self, id: u64) -> Result<u64, Error>;

    #[cfg(any())]
    #[get("/users/<name>")]
    async fn get_v2(&self, name: &str) -> Result<u64, Error>;
}

#[derive(Clone)]
struct UsersImpl;

impl Users for UsersImpl {
    async fn get(&self, id: u64) -> Result<u64, Error> {
        Ok(id)
    }
}

fn main() {
    let _router: axum::Router = UsersServer::new(UsersImpl).unverified().into_router();
}
