//! One trait, both sides: a generated server and a generated client from the same trait, over
//! loopback, with signatures verified. Every verb, argument kind and return kind round-trips;
//! an argument that does not parse is a 400 naming it; unsigned and wrongly signed requests get
//! a 401; a panicking method is a 500 and the server keeps serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use comms::verify::Verifier;
use comms::{BreakerConfig, Call, Error, RetryConfig, service_client};
use comms_tests::serve;
use serde::{Deserialize, Serialize};

const SECRET: &str = "server-test-secret-of-32-bytes-or-more";

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct NewUser {
    pub name: String,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Directory {
    #[get("/users/<id>")]
    async fn get_user(&self, id: u64) -> Result<User, Error>;

    #[get("/users")]
    async fn list(
        &self,
        #[query] page: u32,
        #[query(rename = "per-page")] per_page: Option<u32>,
        #[query] tag: Vec<String>,
        #[query] ids: &[u64],
        #[query] q: &str,
    ) -> Result<Vec<String>, Error>;

    #[get("/labels")]
    async fn labels(
        &self,
        #[query] tag: &[&str],
        #[query] kind: Vec<&str>,
        #[query] q: &Option<String>,
        #[header("X-Scope")] scope: &Option<String>,
    ) -> Result<Vec<String>, Error>;

    #[post("/users")]
    async fn create(&self, #[body] user: &NewUser) -> Result<User, Error>;

    #[put("/users/<id>")]
    async fn replace(&self, id: u64, #[body] user: &NewUser) -> Result<(), Error>;

    #[patch("/users/<id>/name")]
    async fn rename(&self, id: u64, #[body] name: &str) -> Result<User, Error>;

    #[delete("/users/<id>")]
    async fn delete(&self, id: u64) -> Result<(), Error>;

    #[get("/orgs/<org>/files/<path..>")]
    async fn file(&self, org: &str, path: &str) -> Result<String, Error>;

    #[get("/me")]
    async fn me(
        &self,
        #[header("X-Request-Id")] request_id: &str,
        #[header("X-Tenant")] tenant: Option<String>,
    ) -> Result<Vec<String>, Error>;

    #[get("/whoami")]
    async fn whoami(&self) -> Result<Vec<String>, Error>;

    #[get("/panic/<n>")]
    async fn panics(&self, n: u32) -> Result<u32, Error>;

    #[get("/fail/<kind>")]
    async fn fail(&self, kind: &str) -> Result<(), Error>;

    #[head("/users/<id>")]
    async fn exists(&self, id: u64) -> Result<comms::Response, Error>;

    #[get("/raw")]
    async fn raw(&self) -> Result<comms::Response, Error>;

    #[post("/orders", idempotent)]
    async fn order(&self, #[body] item: &str) -> Result<u64, Error>;

    #[post("/queue", idempotent)]
    async fn enqueue(&self) -> Result<u64, Error>;

    /// Counts by (shelf, slot): a map with tuple keys, which JSON cannot write.
    #[post("/tally", idempotent)]
    async fn tally(&self, #[body] item: &str) -> Result<HashMap<(u32, u32), u32>, Error>;

    #[post("/tenant/orders", idempotent)]
    async fn tenant_order(
        &self,
        #[header("X-Tenant")] tenant: &str,
        #[body] item: &str,
    ) -> Result<String, Error>;

    #[post("/accounts/<id>/charge", idempotent)]
    async fn charge(
        &self,
        id: u64,
        #[query] currency: &str,
        #[body] cents: u64,
    ) -> Result<u64, Error>;

    #[get("/busy")]
    async fn busy(&self) -> Result<u64, Error>;

    #[get("/maybe/<id>")]
    async fn maybe(&self, id: u64) -> Result<Option<User>, Error>;
}

/// The service behind the trait, counting the calls that reach it.
#[derive(Clone, Default)]
struct DirectoryImpl {
    calls: Arc<AtomicUsize>,
    /// `order`s run to their end.
    finished: Arc<AtomicUsize>,
}

impl DirectoryImpl {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl Directory for DirectoryImpl {
    async fn get_user(&self, id: u64) -> Result<User, Error> {
        self.count();
        Ok(User {
            id,
            name: format!("user {id}"),
        })
    }

    async fn list(
        &self,
        page: u32,
        per_page: Option<u32>,
        tag: Vec<String>,
        ids: &[u64],
        q: &str,
    ) -> Result<Vec<String>, Error> {
        self.count();
        Ok(vec![
            format!("page={page}"),
            format!("per_page={per_page:?}"),
            format!("tag={tag:?}"),
            format!("ids={ids:?}"),
            format!("q={q}"),
        ])
    }

    async fn create(&self, user: &NewUser) -> Result<User, Error> {
        self.count();
        Ok(User {
            id: 1,
            name: user.name.clone(),
        })
    }

    async fn replace(&self, _id: u64, _user: &NewUser) -> Result<(), Error> {
        self.count();
        Ok(())
    }

    async fn rename(&self, id: u64, name: &str) -> Result<User, Error> {
        self.count();
        Ok(User {
            id,
            name: name.to_owned(),
        })
    }

    async fn delete(&self, _id: u64) -> Result<(), Error> {
        self.count();
        Ok(())
    }

    async fn file(&self, org: &str, path: &str) -> Result<String, Error> {
        self.count();
        Ok(format!("{org}|{path}"))
    }

    async fn me(&self, request_id: &str, tenant: Option<String>) -> Result<Vec<String>, Error> {
        self.count();
        Ok(vec![request_id.to_owned(), format!("{tenant:?}")])
    }

    async fn whoami(&self) -> Result<Vec<String>, Error> {
        self.count();
        // `None` under `unverified()`, where `caller()` would panic: the `expect` panics
        // instead, and the server turns it into a 500 all the same.
        let caller = comms::server::try_caller().expect("a verified request has its caller");
        Ok(vec![
            caller.service_id().to_owned(),
            caller.key_id().to_owned(),
            caller.signing().to_string(),
        ])
    }

    async fn panics(&self, n: u32) -> Result<u32, Error> {
        self.count();
        if n == 0 {
            panic!("the method panicked on purpose");
        }
        Ok(n)
    }

    async fn fail(&self, kind: &str) -> Result<(), Error> {
        self.count();
        Err(comms_tests::built_error(kind))
    }

    async fn exists(&self, id: u64) -> Result<comms::Response, Error> {
        self.count();
        comms::Response::builder(comms::http::StatusCode::OK)
            .header("x-exists", id)
            .build()
    }

    async fn order(&self, item: &str) -> Result<u64, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if item == "slow" {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        // Counted only when the method runs to its end.
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(n)
    }

    async fn tally(&self, _item: &str) -> Result<HashMap<(u32, u32), u32>, Error> {
        // The work (a stock movement, say) is done here, before the answer fails to encode.
        self.count();
        Ok(HashMap::from([((1, 2), 3)]))
    }

    async fn enqueue(&self) -> Result<u64, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if n == 1 {
            return Err(Error::too_many_requests("the queue is full"));
        }
        Ok(n)
    }

    async fn labels(
        &self,
        tag: &[&str],
        kind: Vec<&str>,
        q: &Option<String>,
        scope: &Option<String>,
    ) -> Result<Vec<String>, Error> {
        self.count();
        Ok(vec![
            format!("tag={tag:?}"),
            format!("kind={kind:?}"),
            format!("q={q:?}"),
            format!("scope={scope:?}"),
        ])
    }

    async fn tenant_order(&self, tenant: &str, item: &str) -> Result<String, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(format!("{tenant}: {item} #{n}"))
    }

    async fn charge(&self, _id: u64, _currency: &str, _cents: u64) -> Result<u64, Error> {
        Ok(self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1)
    }

    async fn maybe(&self, id: u64) -> Result<Option<User>, Error> {
        self.count();
        match id {
            0 => Err(Error::forbidden("not yours")),
            1 => Ok(Some(User {
                id,
                name: "one".into(),
            })),
            3 => Err(Error::internal("broken")),
            _ => Ok(None),
        }
    }

    async fn busy(&self) -> Result<u64, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if n == 1 {
            return Err(Error::too_many_requests("slow down")
                .with_retry_after(std::time::Duration::from_secs(1)));
        }
        Ok(n)
    }

    async fn raw(&self) -> Result<comms::Response, Error> {
        self.count();
        comms::Response::builder(comms::http::StatusCode::CREATED)
            .header("x-kind", "raw")
            .body(&b"\x00bytes"[..])
            .build()
    }
}

/// A client of the server at `url`, signing with `secret`, retrying as `retry` says.
fn client_of(url: &str, secret: &str, retry: RetryConfig) -> DirectoryClient {
    DirectoryClient::builder()
        .base_url(url)
        .secret(secret)
        .retry(retry)
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
}

/// A served `DirectoryImpl` that verifies `billing`'s signatures, and a client of it.
async fn pair() -> (DirectoryImpl, DirectoryClient, String) {
    let service = DirectoryImpl::default();
    let router = DirectoryServer::new(service.clone())
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client = client_of(&url, SECRET, RetryConfig::none());
    (service, client, url)
}

/// What a store of the application's own returns.
type Stored<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, comms::BoxError>> + Send + 'a>>;

/// A memory store that records what it is asked: the scope of each claim, and the answers it
/// kept. It answers a claim (recorded at once) after `claims_answered_after`, as over a
/// network, and its first `failing_finishes` finishes fail, as those of a store a blip cut
/// off.
#[derive(Default)]
struct WatchedStore {
    store: comms::server::MemoryIdempotencyStore,
    scopes: Arc<std::sync::Mutex<Vec<String>>>,
    claims_answered_after: std::time::Duration,
    failing_finishes: AtomicUsize,
    kept: Arc<AtomicUsize>,
}

impl comms::server::IdempotencyStore for WatchedStore {
    fn claim<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        fingerprint: &'a str,
        claim: &'a str,
    ) -> Stored<'a, comms::server::Claim> {
        self.scopes.lock().unwrap().push(scope.to_owned());
        Box::pin(async move {
            let claimed = self.store.claim(scope, key, fingerprint, claim).await;
            tokio::time::sleep(self.claims_answered_after).await;
            claimed
        })
    }

    fn finish<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        claim: &'a str,
        response: comms::server::StoredResponse,
    ) -> Stored<'a, ()> {
        let failing = self
            .failing_finishes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Box::pin(std::future::ready(Err("the store did not answer".into())));
        }
        self.kept.fetch_add(1, Ordering::SeqCst);
        self.store.finish(scope, key, claim, response)
    }

    fn release<'a>(&'a self, scope: &'a str, key: &'a str, claim: &'a str) -> Stored<'a, ()> {
        self.store.release(scope, key, claim)
    }
}

mod aliases;
mod forwarding;
mod http;
mod idempotency;
mod listen;
mod round_trips;
mod routing;
mod serving;
