//! Signature slips reported once each, by the macro, and not again by Rust (nor by an
//! `unsafe_code` lint) in the trait given back or in the client's methods: qualifiers, a
//! receiver borrowed for longer than a call, and a success type the client cannot name.

#![forbid(unsafe_code)]

use comms::{Error, service_client};

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Slips {
    #[get("/a")]
    async unsafe fn unsafe_fn(&self) -> Result<(), Error>;

    #[get("/b")]
    const async fn const_fn(&self) -> Result<(), Error>;

    #[get("/c")]
    async extern "C" fn extern_fn(&self) -> Result<(), Error>;

    // Fine on a client, but a generated server lends its service for one request.
    #[get("/d")]
    async fn for_ever(&'static self) -> Result<(), Error>;

    // Written out as `'_`, it is `&self`.
    #[get("/e")]
    async fn elided(&'_ self) -> Result<(), Error>;

    #[get("/f")]
    async fn opaque(&self) -> Result<impl serde::de::DeserializeOwned, Error>;

    #[get("/g")]
    async fn opaque_items(&self) -> Result<Vec<impl serde::de::DeserializeOwned>, Error>;

    #[get("/h")]
    async fn inferred(&self) -> Result<_, Error>;
}

fn main() {}
