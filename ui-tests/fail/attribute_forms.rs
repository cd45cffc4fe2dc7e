use comms::{service_client, Error};

// comms' attributes, written as they are not read: under `#[cfg_attr]`, or qualified as if
// imported. Each is one error, at the attribute.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[cfg_attr(feature = "v2", get("/v2/users"))]
    #[cfg_attr(not(feature = "v2"), get("/users"))]
    async fn list(&self) -> Result<Vec<String>, Error>;

    #[comms::get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<String, Error>;

    #[get("/search")]
    async fn search(&self, #[comms::query] q: &str) -> Result<Vec<String>, Error>;

    #[get["/count"]]
    async fn count(&self) -> Result<u64, Error>;

    #[get("/find")]
    async fn find(&self, #[query[rename = "q"]] text: &str) -> Result<Vec<String>, Error>;
}

fn main() {}
