use comms::{Error, service_client};

pub struct Opaque;

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Types {
    #[get("/users/<id>")]
    async fn path_not_display(&self, id: Opaque) -> Result<(), Error>;

    #[get("/users")]
    async fn query_not_display(&self, #[query] filter: Opaque) -> Result<(), Error>;

    #[post("/users")]
    async fn body_not_serialize(&self, #[body] user: Opaque) -> Result<(), Error>;

    #[get("/users")]
    async fn return_not_deserialize(&self) -> Result<Opaque, Error>;

    #[get("/users")]
    async fn flatten_not_serialize(&self, #[query(flatten)] filter: &Opaque) -> Result<(), Error>;

    #[get("/users")]
    async fn header_not_display(&self, #[header("X-Thing")] thing: Opaque) -> Result<(), Error>;
}

fn main() {}
