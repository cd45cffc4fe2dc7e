//! A trait that says `server = false` has no server to build.

use comms::{Error, service_client};

#[service_client(
    base_url = "http://users:8080",
    service_id = "billing",
    secret_env = "USERS_SECRET",
    server = false
)]
pub trait Users {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<String, Error>;
}

fn main() {
    let _ = UsersServer::new(());
}
