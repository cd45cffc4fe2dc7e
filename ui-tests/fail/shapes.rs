use comms::{Error, Multipart, service_client};

#[derive(serde::Serialize)]
pub struct Filter {
    pub q: String,
}

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Shapes {
    #[get("/a")]
    async fn flatten_renamed(&self, #[query(flatten, rename = "f")] filter: &Filter) -> Result<(), Error>;

    #[get("/b")]
    async fn renamed_flatten(&self, #[query(rename = "f", flatten)] filter: &Filter) -> Result<(), Error>;

    #[get("/c")]
    async fn flatten_twice(&self, #[query(flatten, flatten)] filter: &Filter) -> Result<(), Error>;

    #[get("/d")]
    async fn flatten_value(&self, #[query(flatten = true)] filter: &Filter) -> Result<(), Error>;

    #[post("/e")]
    async fn form_and_body(&self, #[form] form: &Filter, #[body] body: &Filter) -> Result<(), Error>;

    #[post("/f")]
    async fn body_and_form(&self, #[body] body: &Filter, #[form] form: &Filter) -> Result<(), Error>;

    #[put("/g")]
    async fn two_forms(&self, #[form] a: &Filter, #[form] b: &Filter) -> Result<(), Error>;

    #[get("/h")]
    async fn form_on_get(&self, #[form] form: &Filter) -> Result<(), Error>;

    #[head("/i")]
    async fn form_on_head(&self, #[form] form: &Filter) -> Result<(), Error>;

    #[post("/j")]
    async fn form_with_args(&self, #[form(urlencoded)] form: &Filter) -> Result<(), Error>;

    #[post("/k")]
    async fn form_and_query(&self, #[form] #[query] form: &Filter) -> Result<(), Error>;

    #[post("/l")]
    async fn multipart_and_form(&self, #[multipart] parts: Multipart, #[form] form: &Filter) -> Result<(), Error>;

    #[post("/login")]
    async fn optional_form(&self, #[form] form: Option<&Filter>) -> Result<(), Error>;

    #[post("/login")]
    async fn text_form(&self, #[form] form: &str) -> Result<(), Error>;

    #[post("/login")]
    async fn list_form(&self, #[form] form: Vec<String>) -> Result<(), Error>;

    // A list of pairs is a form as it is.
    #[post("/login")]
    async fn pairs_form(&self, #[form] form: &[(&str, &str)]) -> Result<(), Error>;

    #[post("/m")]
    async fn body_and_multipart(&self, #[body] body: &Filter, #[multipart] parts: &Multipart) -> Result<(), Error>;

    #[get("/n")]
    async fn multipart_on_get(&self, #[multipart] parts: Multipart) -> Result<(), Error>;

    #[post("/o")]
    async fn multipart_with_args(&self, #[multipart(boundary = "x")] parts: Multipart) -> Result<(), Error>;

    #[get("/q")]
    async fn flatten_optional(&self, #[query(flatten)] filter: &Option<Filter>) -> Result<(), Error>;

    // One value is a plain `#[query]`, not a flattened one.
    #[get("/flatten-value")]
    async fn flatten_one_value(&self, #[query(flatten)] q: &str) -> Result<(), Error>;
}

/// A type error, reported at the type once the attributes are right.
#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Types {
    #[post("/p")]
    async fn multipart_not_multipart(&self, #[multipart] parts: Vec<u8>) -> Result<(), Error>;
}

fn main() {}
