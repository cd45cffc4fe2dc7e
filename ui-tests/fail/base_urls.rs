use comms::{Error, service_client};

#[service_client(base_url = "ftp://users:21", service_id = "a", secret_env = "S")]
pub trait WrongScheme {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080/?debug=1", service_id = "a", secret_env = "S")]
pub trait WithQuery {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080/#top", service_id = "a", secret_env = "S")]
pub trait WithFragment {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "users.internal:8080", service_id = "a", secret_env = "S")]
pub trait NoScheme {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:http", service_id = "a", secret_env = "S")]
pub trait BadPort {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:+8080", service_id = "a", secret_env = "S")]
pub trait SignedPort {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

#[service_client(base_url = "http://10.1:8080", service_id = "a", secret_env = "S")]
pub trait ShortAddress {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

fn main() {}
