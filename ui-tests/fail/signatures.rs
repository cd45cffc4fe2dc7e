use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Signatures {
    #[get("/a")]
    fn not_async(&self) -> Result<(), Error>;

    #[get("/b")]
    async fn no_self() -> Result<(), Error>;

    #[get("/c")]
    async fn mut_self(&mut self) -> Result<(), Error>;

    #[get("/d")]
    async fn owned_self(self) -> Result<(), Error>;

    #[get("/e/<id>")]
    async fn generic<T>(&self, id: T) -> Result<(), Error>;

    #[get("/f")]
    async fn not_a_result(&self) -> String;

    #[get("/g")]
    async fn no_return(&self);

    #[get("/h")]
    async fn wrong_error(&self) -> Result<(), String>;

    async fn no_verb(&self) -> Result<(), Error>;

    // A helper is no HTTP method: one error, not one for each way it differs from one.
    fn helper(&self) -> u32 {
        1
    }

    #[get("/i")]
    #[post("/i")]
    async fn two_verbs(&self) -> Result<(), Error>;

    #[get("/j")]
    async fn with_body(&self) -> Result<(), Error> {
        Ok(())
    }

    #[get("/k/<a>")]
    async fn pattern(&self, (a, b): (u32, u32)) -> Result<(), Error>;
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Generic<T> {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;

    const LIMIT: u32;
}

fn main() {}
