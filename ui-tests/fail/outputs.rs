//! A method's error type must be comms' own: another type named `Error` is refused at it. A
//! decoded value owns its data: a borrowed one is refused at it.

use comms::service_client;

#[derive(serde::Deserialize)]
pub struct User {
    pub id: u64,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<User, std::io::Error>;
}

// A decoded value owns its data: a borrowed type is refused at it.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Borrowed {
    #[get("/name")]
    async fn name(&self) -> Result<&str, comms::Error>;

    #[get("/names")]
    async fn names(&self) -> Result<Option<&[String]>, comms::Error>;

    // Within the type too, at the reference.
    #[get("/tags")]
    async fn tags(&self) -> Result<Vec<(u32, &str)>, comms::Error>;
}

// comms' own types where a value decoded from JSON goes.
#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Nested {
    #[get("/a")]
    async fn optional_response(&self) -> Result<Option<comms::Response>, comms::Error>;

    #[get("/b")]
    async fn optional_value(&self) -> Result<Option<comms::ResponseValue<u32>>, comms::Error>;

    #[get("/c")]
    async fn valued_stream(&self) -> Result<comms::ResponseValue<comms::ByteStream>, comms::Error>;

    #[get("/d")]
    async fn valued_response(&self) -> Result<comms::ResponseValue<comms::Response>, comms::Error>;
}

fn main() {}

mod web {
    /// A web framework's response type, imported under the same name as comms'.
    pub struct Response;
}

mod with_web_response {
    use super::web::Response;
    use comms::service_client;

    // A bare `Response` names whatever `Response` is in scope: another is one error, at it.
    #[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
    pub trait Raw {
        #[get("/raw")]
        async fn raw(&self) -> Result<Response, comms::Error>;
    }
}
