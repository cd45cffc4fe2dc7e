use comms::{service_client, Error};

// Each mistake reported once, by the macro: not again by Rust in the trait given back.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, mut id: u64) -> Result<String, Error>;

    #[get("/users/<id>/name")]
    async fn name(&self, ref id: u64) -> Result<String, Error>;

    #[get("/users")]
    async fn list(mut self) -> Result<Vec<String>, Error>;

    #[get("/users/count")]
    pub async fn count(&self, #[query] active: bool) -> Result<u64, Error>;

    // What else is wrong with a method written `pub` is told in the same build.
    #[get("/users/<id>/age")]
    pub async fn age(&self, mut id: u64) -> Result<u64, Error>;
}

// Applied twice (a slip of copy and paste): one error, at the second.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Twice {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

fn main() {}
