//! A trait implemented by a service and served; references, options, vectors and every return
//! kind.

use comms::verify::Verifier;
use comms::{Error, Response, service_client};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
pub struct User {
    pub id: u64,
}

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users")]
    async fn list(
        &self,
        #[query] q: &str,
        #[query] page: Option<u32>,
        #[query] ids: &[u64],
        #[header("X-Tenant")] tenant: Option<&str>,
    ) -> Result<Vec<User>, Error>;

    #[post("/users", idempotent)]
    async fn create(&self, #[body] user: &User) -> Result<(), Error>;

    #[get("/files/<path..>")]
    async fn file(&self, path: &str) -> Result<Response, Error>;
}

#[derive(Clone)]
struct Service;

impl Users for Service {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        Ok(User { id })
    }

    async fn list(
        &self,
        _q: &str,
        _page: Option<u32>,
        _ids: &[u64],
        _tenant: Option<&str>,
    ) -> Result<Vec<User>, Error> {
        Ok(Vec::new())
    }

    async fn create(&self, _user: &User) -> Result<(), Error> {
        Ok(())
    }

    async fn file(&self, _path: &str) -> Result<Response, Error> {
        Err(Error::not_found("no such file"))
    }
}

fn main() {
    let _router: axum::Router = UsersServer::new(Service)
        .verifier(Verifier::new().service("billing", "secret"))
        .max_body_bytes(1 << 20)
        .into_router();
}
