use comms::{Error, service_client};

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
}

fn main() {}
