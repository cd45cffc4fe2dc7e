//! A macro among a trait's items is expanded only after `#[service_client]` has read the trait:
//! one error at it, saying so, and not a second one for the comms attributes it expands to.

use comms::{Error, service_client};

macro_rules! crud {
    () => {
        #[get("/users/<id>")]
        async fn get_user(&self, id: u64) -> Result<String, Error>;
    };
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Users {
    #[get("/users")]
    async fn list(&self) -> Result<Vec<String>, Error>;

    crud!();
}

async fn use_it(users: UsersClient) -> Result<Vec<String>, Error> {
    users.list().await
}

fn main() {
    let _ = use_it;
}
