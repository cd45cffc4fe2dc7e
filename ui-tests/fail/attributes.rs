use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Attributes {
    #[get("/a", retries = 3)]
    async fn unknown_option(&self) -> Result<(), Error>;

    #[get("/b", idempotent)]
    async fn idempotent_get(&self) -> Result<(), Error>;

    #[post("/c", timeout_ms = 0)]
    async fn zero_timeout(&self) -> Result<(), Error>;

    #[post("/d", idempotent, idempotent)]
    async fn twice(&self) -> Result<(), Error>;

    #[get]
    async fn no_route(&self) -> Result<(), Error>;

    #[get(42)]
    async fn route_not_a_string(&self) -> Result<(), Error>;

    #[get("/e")]
    async fn header_without_name(&self, #[header] id: &str) -> Result<(), Error>;

    #[get("/f")]
    async fn bad_header_name(&self, #[header("X Request")] id: &str) -> Result<(), Error>;

    #[get("/g")]
    async fn reserved_header(&self, #[header("X-Signature")] sig: &str) -> Result<(), Error>;

    #[get("/g2")]
    async fn hop_by_hop_header(&self, #[header("Connection")] how: &str) -> Result<(), Error>;

    #[get("/g3")]
    async fn context_header(&self, #[header("Comms-Deadline-Ms")] ms: u64) -> Result<(), Error>;

    #[get("/h")]
    async fn unknown_query_option(&self, #[query(name = "p")] page: u32) -> Result<(), Error>;

    #[post("/i")]
    async fn two_kinds(&self, #[query] #[body] page: u32) -> Result<(), Error>;

    #[post("/j")]
    async fn body_with_args(&self, #[body(json)] page: u32) -> Result<(), Error>;

    // Written as other attributes are: the key as `#[header]` takes its name, a flag with a
    // value, an option by a shorter name.
    #[get("/k")]
    async fn query_named_like_a_header(&self, #[query("per-page")] per_page: u32) -> Result<(), Error>;

    #[post("/l", idempotent = true)]
    async fn idempotent_with_a_value(&self) -> Result<(), Error>;

    #[get("/m", timeout = 500)]
    async fn timeout_by_a_shorter_name(&self) -> Result<(), Error>;
}

fn main() {}
