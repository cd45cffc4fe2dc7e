// A generated server used while comms' `server` feature is off: one error, naming the feature.
use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get(&self, id: u64) -> Result<String, Error>;
}

#[derive(Clone)]
struct UsersImpl;

impl Users for UsersImpl {
    async fn get(&self, id: u64) -> Result<String, Error> {
        Ok(id.to_string())
    }
}

fn main() {
    let _router = UsersServer::new(UsersImpl)
        .verifier(comms::verify::Verifier::new().service("billing", "secret"))
        .max_body_bytes(1 << 20)
        .into_router();
}

/// Where the router goes somewhere that wants one: still only the error above.
pub struct Router;

fn nest(_router: Router) {}

pub fn served_in_a_router() {
    nest(UsersServer::new(UsersImpl).into_router());
    let _typed: Router = UsersServer::new(UsersImpl).into_router();
}
