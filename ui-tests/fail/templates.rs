use comms::{Error, service_client};

// Every malformed route of one trait is reported in the same build.
#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Routes {
    #[get("users/<id>")]
    async fn no_slash(&self, id: u64) -> Result<(), Error>;

    #[get("/users/<id")]
    async fn unclosed(&self, id: u64) -> Result<(), Error>;

    #[get("/users/<>")]
    async fn empty_name(&self) -> Result<(), Error>;

    #[get("/users/v<id>")]
    async fn partial(&self, id: u64) -> Result<(), Error>;

    #[get("/users?page=1")]
    async fn query_in_route(&self) -> Result<(), Error>;

    #[get("/files/<path..>/raw")]
    async fn trailing_not_last(&self, path: &str) -> Result<(), Error>;

    #[get("/users/<id>/friends/<id>")]
    async fn duplicate(&self, id: u64) -> Result<(), Error>;

    #[get("/users/all users")]
    async fn space(&self) -> Result<(), Error>;

    #[get("/users/../admin")]
    async fn dot_segment(&self) -> Result<(), Error>;

    #[get("/users/%2e%2E/admin")]
    async fn encoded_dot_segment(&self) -> Result<(), Error>;

    #[get("/users//x")]
    async fn empty_segment(&self) -> Result<(), Error>;

    #[get("/users/<1st>")]
    async fn bad_name(&self) -> Result<(), Error>;

    // Query parameters in the route, as Rocket writes them; a parameter with its type, and one
    // with a dash: each is told the fix.
    #[get("/users?<page>&<per_page>")]
    async fn rocket_query(&self, page: u32, per_page: u32) -> Result<(), Error>;

    #[get("/users/<id: u64>")]
    async fn typed_name(&self, id: u64) -> Result<(), Error>;

    #[get("/users/<user-id>")]
    async fn dashed_name(&self, user_id: u64) -> Result<(), Error>;

    // Parameters as axum and OpenAPI write them.
    #[get("/users/{id}/files/{*path}")]
    async fn braced(&self, id: u64, path: &str) -> Result<(), Error>;

    // Slips named as what they are.
    #[get("http://users:8080/users")]
    async fn absolute(&self) -> Result<(), Error>;

    #[get("/users/<id>>")]
    async fn closed_twice(&self, id: u64) -> Result<(), Error>;

    #[get("/files/<path...>")]
    async fn three_dots(&self, path: &str) -> Result<(), Error>;

    #[get("/café/crème")]
    async fn accents(&self) -> Result<(), Error>;

    #[get("/search", timeout_ms = 99999999999999999999999)]
    async fn huge_timeout(&self) -> Result<(), Error>;

    #[get("/search")]
    async fn query_option(&self, #[query(renam = "q")] text: &str) -> Result<(), Error>;

    #[get("/me")]
    async fn nameless_header(&self, #[header("")] id: &str) -> Result<(), Error>;
}

fn main() {}
