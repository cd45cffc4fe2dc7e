use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Params {
    // A list that may be absent: an empty one is.
    #[get("/tags")]
    async fn optional_list(&self, #[query] tag: Option<Vec<String>>) -> Result<(), Error>;

    // Two parameters renamed: each is said once, with the argument nearest its name.
    #[get("/orgs/<org>/users/<user>")]
    async fn renamed(&self, user_id: u64, org_id: u64) -> Result<(), Error>;

    // A route parameter with no argument, and a near miss.
    #[get("/users/<idd>")]
    async fn typo(&self, id: u64) -> Result<(), Error>;

    // An argument used nowhere.
    #[get("/users")]
    async fn unused(&self, page: u32) -> Result<(), Error>;

    // A route parameter bound to a query argument.
    #[get("/users/<id>")]
    async fn query_and_path(&self, #[query] id: u64) -> Result<(), Error>;

    // Two arguments for one query key.
    #[get("/users")]
    async fn same_key(&self, #[query] page: u32, #[query(rename = "page")] p: u32) -> Result<(), Error>;

    // Two arguments for one header, spelt in two cases.
    #[get("/users")]
    async fn same_header(
        &self,
        #[header("X-Request-Id")] request: &str,
        #[header("x-request-id")] trace: &str,
    ) -> Result<(), Error>;
}

fn main() {}
