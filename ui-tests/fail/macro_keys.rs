use comms::{Error, service_client};

// Missing required keys.
#[service_client(base_url = "http://users:8080")]
pub trait MissingKeys {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// Unknown key, with a suggestion, and a key set twice.
#[service_client(
    base_ulr = "http://users:8080",
    base_url = "http://users:8080",
    service_id = "a",
    service_id = "b",
    secret_env = "S",
)]
pub trait TypoAndDuplicate {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// A misspelt key alone: reported as misspelt, not also as missing.
#[service_client(base_ulr = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait TypoAlone {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// A key written by another name: told the key's name, not also that it is missing.
#[service_client(base_url = "http://users:8080", service = "a", secret_env = "S")]
pub trait OtherName {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// Values that are not literals.
#[service_client(base_url = env!("USERS_URL"), service_id = "a", secret_env = "S", signing = legacy)]
pub trait NotLiterals {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// A value that is not a string.
#[service_client(base_url = "http://users:8080", service_id = 7, secret_env = "S")]
pub trait NotAString {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// A misspelt signing scheme and bad environment variable names.
#[service_client(
    base_url = "http://users:8080",
    service_id = "a",
    secret_env = "MY SECRET",
    base_url_env = "",
    key_id_env = "KEY=ID",
    signing = "rfc-9421",
)]
pub trait BadValues {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// A service id with a space.
#[service_client(base_url = "http://users:8080", service_id = "bill ing", secret_env = "S")]
pub trait BadServiceId {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// One variable for two settings.
#[service_client(
    base_url = "http://users:8080",
    service_id = "billing",
    secret_env = "USERS",
    base_url_env = "USERS"
)]
pub trait SharedVariable {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// `base_url_env` alone, as if it stood for `base_url`: said at it.
#[service_client(base_url_env = "USERS_URL", service_id = "billing", secret_env = "S")]
pub trait EnvAlone {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// Not `key = value`: said at the key.
#[service_client(base_url)]
pub trait Malformed {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

// Settings of a method or of the built client, written on the trait: each told where it goes.
#[service_client(
    base_url = "http://users:8080",
    service_id = "billing",
    secret_env = "S",
    timeout_ms = 500,
    retries = 3,
    key_id = "k1",
    idempotent,
)]
pub trait Elsewhere {
    #[get("/a")]
    async fn a(&self) -> Result<(), Error>;
}

fn main() {}
