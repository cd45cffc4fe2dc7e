// One mistake gives one error: the trait and client still exist, so code using them does not
// fail as well.
use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Users {
    #[get("/users/<id>")]
    async fn get(&self, id: u64) -> Result<String, Error>;

    #[get("/users/<name>")]
    async fn broken(&self, id: u64) -> Result<String, Error>;

    #[cfg(any())]
    #[get("/gone")]
    async fn gone(&self) -> Result<(), Error>;
}

async fn use_it(users: UsersClient) -> Result<String, Error> {
    users.get(1).await?;
    users.broken(2).await
}

// Generic code spawning a method's future still finds it `Send`.
fn spawn_it<U: Users + Clone + Send + Sync + 'static>(users: U) {
    fn needs_send<T: Send>(_: T) {}
    needs_send(async move { users.get(1).await });
}

fn main() {
    let _ = use_it;
    let _ = spawn_it::<UsersClient>;
    let _ = UsersClient::new();
}
