//! A trait whose methods return an alias, `Result<T>`, standing for `Result<T, comms::Error>`:
//! the client, the server and the user's own implementation all take it.

use super::*;

type Result<T> = std::result::Result<T, Error>;

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Aliased {
    #[get("/users/<id>")]
    async fn user(&self, id: u64) -> Result<User>;

    #[get("/maybe/<id>")]
    async fn maybe(&self, id: u64) -> Result<Option<User>>;

    #[delete("/users/<id>")]
    async fn remove(&self, id: u64) -> Result<()>;
}

#[derive(Clone)]
struct AliasedImpl;

impl Aliased for AliasedImpl {
    async fn user(&self, id: u64) -> Result<User> {
        Ok(User {
            id,
            name: "aliased".into(),
        })
    }

    async fn maybe(&self, id: u64) -> Result<Option<User>> {
        match id {
            0 => Err(Error::not_found("no such user")),
            id => self.user(id).await.map(Some),
        }
    }

    async fn remove(&self, id: u64) -> Result<()> {
        match id {
            0 => Err(Error::conflict("in use")),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn methods_returning_an_alias_round_trip() {
    let router = AliasedServer::new(AliasedImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = AliasedClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .retry(RetryConfig::none())
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap();
    assert_eq!(client.user(7).await.unwrap().id, 7);
    assert_eq!(client.maybe(3).await.unwrap().map(|u| u.id), Some(3));
    assert!(client.maybe(0).await.unwrap().is_none());
    client.remove(1).await.unwrap();
    let err = client.remove(0).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(_)), "{err}");
}
