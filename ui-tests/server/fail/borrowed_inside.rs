//! With `server`, a `'static` or `&mut` reference inside an argument's type is refused at it.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/a")]
    async fn a(
        &self,
        #[header("X-A")] h: Option<&'static str>,
        #[query] tags: Vec<&'static str>,
    ) -> Result<(), Error>;

    #[post("/b")]
    async fn b(&self, #[body] b: &mut Vec<u32>) -> Result<(), Error>;

    #[post("/c")]
    async fn c(&self, #[body] c: (u32, Option<&mut String>)) -> Result<(), Error>;
}

fn main() {}
