//! A receiver other than `&self` is reported once, by the macro: the trait keeps it as written,
//! so that an implementation written to match it (a mock, a service) and its callers are not
//! refused as well.

use comms::{Error, service_client};
use std::pin::Pin;
use std::sync::Arc;

#[service_client(base_url = "http://users:8080", service_id = "a", secret_env = "S")]
pub trait Receivers {
    #[get("/a")]
    async fn mutable(&mut self) -> Result<(), Error>;

    #[get("/b")]
    async fn owned(self) -> Result<(), Error>;

    #[get("/c")]
    async fn owned_mut(mut self) -> Result<(), Error>;

    #[get("/d")]
    async fn arced(self: Arc<Self>) -> Result<(), Error>;

    #[get("/e")]
    async fn pinned(self: Pin<&mut Self>) -> Result<(), Error>;
}

struct Mock;

impl Receivers for Mock {
    async fn mutable(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn owned(self) -> Result<(), Error> {
        Ok(())
    }

    async fn owned_mut(mut self) -> Result<(), Error> {
        let _ = &mut self;
        Ok(())
    }

    async fn arced(self: Arc<Self>) -> Result<(), Error> {
        Ok(())
    }

    async fn pinned(self: Pin<&mut Self>) -> Result<(), Error> {
        Ok(())
    }
}

async fn use_it(mut client: ReceiversClient) -> Result<(), Error> {
    client.mutable().await?;
    Arc::new(client.clone()).arced().await?;
    client.owned().await
}

fn main() {
    let _ = (Mock, use_it);
}
