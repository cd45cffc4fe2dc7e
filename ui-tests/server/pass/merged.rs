//! A generated server merged as it is (`Router::merge` takes `Into<Router<S>>`) is its router,
//! given the state type of the router it joins: stateless or not.

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
    let _plain: axum::Router = axum::Router::new().merge(UsersServer::new(Impl).unverified());
    let _into: axum::Router = UsersServer::new(Impl).unverified().into();
    let _stateful: axum::Router = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(|axum::extract::State(state): axum::extract::State<AppState>| async move {
                state.greeting
            }),
        )
        .merge(UsersServer::new(Impl).unverified())
        .with_state(AppState { greeting: "hello" });
}
