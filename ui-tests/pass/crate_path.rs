//! `crate = ".."`: comms reached through a path of the user's, here a module re-exporting it
//! as a platform crate would; and written back by the generated code at every use.

mod platform {
    pub use comms as rpc;
}

use platform::rpc::{Error, service_client};

#[service_client(
    base_url = "http://a:8080",
    service_id = "b",
    secret_env = "S",
    crate = "crate::platform::rpc"
)]
pub trait Users {
    #[get("/users/<id>")]
    async fn get(&self, id: u64) -> Result<String, Error>;

    #[get("/users")]
    async fn raw(&self) -> Result<platform::rpc::Response, Error>;
}

fn main() {
    let client: UsersClient = UsersClient::builder()
        .secret("s")
        .build()
        .unwrap();
    let _ = client.with(platform::rpc::CallOptions::new());
}
