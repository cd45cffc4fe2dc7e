//! A generated server's router is stateless (`Router<()>`); merged into an application's
//! router that has a state, it is first given that state's type with `.with_state(())`.

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "billing", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<String, Error>;
}

#[derive(Clone)]
struct Impl;

impl Users for Impl {
    async fn get_user(&self, id: u64) -> Result<String, Error> {
        Ok(format!("user {id}"))
    }
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

fn main() {
    let users = UsersServer::new(Impl).unverified().into_router();
    let _app: axum::Router = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(|axum::extract::State(state): axum::extract::State<AppState>| async move {
                state.greeting
            }),
        )
        .merge(users.with_state(()))
        .with_state(AppState { greeting: "hello" });
}
