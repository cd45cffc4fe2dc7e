//! The service must implement every method of the trait, with the trait's signature.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<String, Error>;

    #[delete("/users/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;
}

#[derive(Clone)]
struct Missing;

impl Users for Missing {
    async fn get_user(&self, _id: u64) -> Result<String, Error> {
        Ok(String::new())
    }
}

#[derive(Clone)]
struct Mistyped;

impl Users for Mistyped {
    async fn get_user(&self, _id: &str) -> Result<String, Error> {
        Ok(String::new())
    }

    async fn delete(&self, _id: u64) -> Result<(), Error> {
        Ok(())
    }
}

fn main() {}
