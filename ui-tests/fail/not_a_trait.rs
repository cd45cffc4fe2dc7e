use comms::service_client;

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub struct Users;

fn main() {}
