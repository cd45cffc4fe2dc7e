//! With the `server` feature off, the stand-in the macro puts where `<Trait>Server` would be
//! warns of nothing, whatever the trait's visibility or place, and a type of the user's by that
//! name, beside the trait, takes its place without a conflict.

#![deny(warnings)]

use comms::{Error, service_client};

mod own {
    use super::*;

    #[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
    pub trait Users {
        #[get("/users/<id>")]
        async fn get(&self, id: u64) -> Result<String, Error>;
    }

    /// A server of the user's own, by the name the generated one would have.
    pub struct UsersServer {
        pub port: u16,
    }
}

#[service_client(base_url = "http://orders:8080", service_id = "a", secret_env = "S")]
trait Orders {
    #[get("/orders")]
    async fn list(&self) -> Result<Vec<u64>, Error>;
}

#[service_client(base_url = "http://stock:8080", service_id = "a", secret_env = "S")]
pub(crate) trait Stock {
    #[get("/stock")]
    async fn level(&self) -> Result<u64, Error>;
}

fn main() {
    // A trait declared in a function.
    #[service_client(base_url = "http://inner:8080", service_id = "a", secret_env = "S")]
    trait Inner {
        #[get("/inner")]
        async fn get(&self) -> Result<(), Error>;
    }

    let own = own::UsersServer { port: 8080 };
    assert_eq!(own.port, 8080);
    let _ = (OrdersClient::new, StockClient::new, InnerClient::new);
}
