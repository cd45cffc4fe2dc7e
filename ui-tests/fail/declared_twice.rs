//! A method declared twice (copied and not renamed) is one error, at the second, and code
//! calling the client has nothing more to report.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get(&self, id: u64) -> Result<String, Error>;

    #[get("/users/<id>/name")]
    async fn get(&self, id: u64) -> Result<String, Error>;
}

#[allow(dead_code)]
async fn use_it(users: UsersClient) -> Result<String, Error> {
    users.get(1).await
}

fn main() {}
