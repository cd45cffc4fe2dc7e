//! A constant or a type in a service trait is one error each, at the item: the client still
//! implements the trait's methods, so the code calling them reports nothing more.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    const PAGE: u32 = 50;

    type Id;

    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<String, Error>;

    #[get("/users")]
    async fn list(&self, #[query] page: u32) -> Result<Vec<String>, Error>;
}

async fn app(users: UsersClient) -> Result<(), Error> {
    users.get_user(1).await?;
    users.list(2).await?;
    Ok(())
}

fn main() {
    let _ = app;
}
