use comms::{service_client, Error};

// A slip of syntax in the trait (a `;` missing) is Rust's to report, once: not as an item
// that is no trait, nor as every comms attribute unknown.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64, #[query] fields: &str) -> Result<String, Error>

    #[delete("/users/<id>")]
    async fn delete_user(&self, id: u64) -> Result<(), Error>;
}

fn main() {}
