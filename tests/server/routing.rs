//! Where a generated server's routes sit: beside other methods' routes whose parameters are
//! named otherwise, behind a `VerifyLayer`, nested under a prefix.

use super::*;
use comms::verify::VerifyLayer;

/// Two methods whose parameter at one place of the path is named differently.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Accounts {
    #[get("/accounts/<id>")]
    async fn get(&self, id: u32) -> Result<u32, Error>;

    #[delete("/accounts/<account_id>")]
    async fn close(&self, account_id: u32) -> Result<u32, Error>;

    #[get("/accounts/<id>/files/<path..>")]
    async fn file(&self, id: u32, path: &str) -> Result<String, Error>;

    #[put("/accounts/<account>/files/<name..>")]
    async fn put_file(&self, account: u32, name: &str) -> Result<String, Error>;

    #[get("/")]
    async fn root(&self) -> Result<String, Error>;

    /// Literal segments starting with `:` and `*`, which axum's 0.7 path syntax would claim.
    #[post("/accounts/<id>/:freeze")]
    async fn freeze(&self, id: u32) -> Result<String, Error>;

    #[get("/accounts/*")]
    async fn every(&self) -> Result<String, Error>;
}

#[derive(Clone)]
struct AccountsImpl;

impl Accounts for AccountsImpl {
    async fn get(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }

    async fn close(&self, account_id: u32) -> Result<u32, Error> {
        Ok(account_id + 1000)
    }

    async fn file(&self, id: u32, path: &str) -> Result<String, Error> {
        Ok(format!("get {id} {path}"))
    }

    async fn put_file(&self, account: u32, name: &str) -> Result<String, Error> {
        Ok(format!("put {account} {name}"))
    }

    async fn root(&self) -> Result<String, Error> {
        Ok(comms::server::caller().service_id().to_owned())
    }

    async fn freeze(&self, id: u32) -> Result<String, Error> {
        Ok(format!("froze {id}"))
    }

    async fn every(&self) -> Result<String, Error> {
        Ok("every".to_owned())
    }
}

fn accounts(verifier: Verifier) -> axum::Router {
    AccountsServer::new(AccountsImpl)
        .verifier(verifier)
        .into_router()
}

#[tokio::test]
async fn parameters_named_otherwise_at_one_place_of_two_routes_are_served() {
    let url = serve(accounts(Verifier::new().service("billing", SECRET))).await;
    let client: AccountsClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.get(4).await.unwrap(), 4);
    assert_eq!(client.close(4).await.unwrap(), 1004);
    assert_eq!(client.file(5, "a/b").await.unwrap(), "get 5 a/b");
    assert_eq!(client.put_file(6, "c").await.unwrap(), "put 6 c");
}

/// Literal routes beside parameter routes of other verbs.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Items {
    #[get("/items/me")]
    async fn mine(&self) -> Result<String, Error>;

    #[get("/items/<id>")]
    async fn item(&self, id: &str) -> Result<String, Error>;

    #[delete("/items/<id>")]
    async fn remove(&self, id: &str) -> Result<String, Error>;

    #[delete("/items/<id>/tags/<tag>")]
    async fn untag(&self, id: &str, tag: &str) -> Result<String, Error>;

    #[get("/items/me/tags/<tag>")]
    async fn my_tag(&self, tag: &str) -> Result<String, Error>;

    #[get("/files/readme")]
    async fn readme(&self) -> Result<String, Error>;

    #[put("/files/<path..>")]
    async fn put_file(&self, path: &str) -> Result<String, Error>;

    /// Compiled out: its literal route takes nothing from `item`, so `remove` is not served at
    /// it either.
    #[cfg(any())]
    #[get("/items/mine")]
    async fn gated(&self) -> Result<String, Error>;

    /// The place after `/pairs` is named `x` by `pair`; `swap` names another place `x` too.
    #[get("/pairs/<x>")]
    async fn pair(&self, x: u32) -> Result<String, Error>;

    #[get("/pairs/<y>/then/<x>")]
    async fn swap(&self, y: u32, x: u32) -> Result<String, Error>;
}

#[derive(Clone)]
struct ItemsImpl;

impl Items for ItemsImpl {
    async fn mine(&self) -> Result<String, Error> {
        Ok("mine".into())
    }
    async fn item(&self, id: &str) -> Result<String, Error> {
        Ok(format!("item {id}"))
    }
    async fn remove(&self, id: &str) -> Result<String, Error> {
        Ok(format!("removed {id}"))
    }
    async fn untag(&self, id: &str, tag: &str) -> Result<String, Error> {
        Ok(format!("untagged {id} {tag}"))
    }
    async fn my_tag(&self, tag: &str) -> Result<String, Error> {
        Ok(format!("my tag {tag}"))
    }
    async fn readme(&self) -> Result<String, Error> {
        Ok("readme".into())
    }
    async fn put_file(&self, path: &str) -> Result<String, Error> {
        Ok(format!("put {path}"))
    }
    #[cfg(any())]
    async fn gated(&self) -> Result<String, Error> {
        Ok("gated".into())
    }
    async fn pair(&self, x: u32) -> Result<String, Error> {
        Ok(format!("pair {x}"))
    }
    async fn swap(&self, y: u32, x: u32) -> Result<String, Error> {
        Ok(format!("swap {y} {x}"))
    }
}

/// A router takes `DELETE /items/me` to `GET /items/me`'s route, preferring the literal
/// segment: the generated server serves `remove` there too, as the trait says.
#[tokio::test]
async fn a_literal_route_of_one_verb_leaves_another_verbs_parameter_route_its_requests() {
    let router = ItemsServer::new(ItemsImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let url = serve(router).await;
    let client: ItemsClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.remove("me").await.unwrap(), "removed me");
    assert_eq!(client.remove("7").await.unwrap(), "removed 7");
    assert_eq!(client.untag("me", "x").await.unwrap(), "untagged me x");
    assert_eq!(client.my_tag("x").await.unwrap(), "my tag x");
    assert_eq!(client.put_file("readme").await.unwrap(), "put readme");
    assert_eq!(client.readme().await.unwrap(), "readme");
    assert_eq!(client.mine().await.unwrap(), "mine");
    assert_eq!(client.pair(1).await.unwrap(), "pair 1");
    assert_eq!(client.swap(1, 2).await.unwrap(), "swap 1 2");
    // A verb the trait serves at neither route is refused there, saying which it serves.
    let refused = reqwest::Client::new()
        .post(format!("{url}/items/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
    let allow = refused.headers()["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("DELETE"), "{allow}");
}

/// Routes of two verbs each more literal than the other somewhere.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Crossing {
    #[get("/u/<a>/x")]
    async fn get_x(&self, a: &str) -> Result<String, Error>;

    #[post("/u/me/<b>")]
    async fn post_me(&self, b: &str) -> Result<String, Error>;

    #[head("/v/<a>/x")]
    async fn probe_x(&self, a: &str) -> Result<comms::ResponseValue<()>, Error>;

    #[get("/v/me/<b>")]
    async fn get_me(&self, b: &str) -> Result<String, Error>;

    /// Three verbs over two places: each pair shares some paths, all three one.
    #[put("/w/<a>/<b>/z")]
    async fn put_w(&self, a: &str, b: &str) -> Result<String, Error>;

    #[delete("/w/me/<b>/<c>")]
    async fn delete_w(&self, b: &str, c: &str) -> Result<String, Error>;

    #[patch("/w/<a>/you/<c>")]
    async fn patch_w(&self, a: &str, c: &str) -> Result<String, Error>;
}

#[derive(Clone)]
struct CrossingImpl;

impl Crossing for CrossingImpl {
    async fn get_x(&self, a: &str) -> Result<String, Error> {
        Ok(format!("get_x {a}"))
    }
    async fn post_me(&self, b: &str) -> Result<String, Error> {
        Ok(format!("post_me {b}"))
    }
    async fn probe_x(&self, a: &str) -> Result<comms::ResponseValue<()>, Error> {
        let which = comms::http::HeaderValue::try_from(format!("probe_x {a}")).unwrap();
        Ok(comms::ResponseValue::new(())
            .with_header(comms::http::HeaderName::from_static("x-which"), which))
    }
    async fn get_me(&self, b: &str) -> Result<String, Error> {
        Ok(format!("get_me {b}"))
    }
    async fn put_w(&self, a: &str, b: &str) -> Result<String, Error> {
        Ok(format!("put_w {a} {b}"))
    }
    async fn delete_w(&self, b: &str, c: &str) -> Result<String, Error> {
        Ok(format!("delete_w {b} {c}"))
    }
    async fn patch_w(&self, a: &str, c: &str) -> Result<String, Error> {
        Ok(format!("patch_w {a} {c}"))
    }
}

/// Where two routes of different verbs each match some of the other's paths, a router takes
/// a path both match to the route literal first (`/u/me/x` to `POST /u/me/<b>`): each method is
/// served at the paths they share too, so `get_x("me")` is not a 405, and a `HEAD` there is
/// `probe_x`'s, not answered by `get_me` as a `GET`.
#[tokio::test]
async fn routes_of_two_verbs_sharing_some_paths_each_serve_their_own_method_there() {
    let router = CrossingServer::new(CrossingImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: CrossingClient = comms_tests::plain_client(&serve(router).await, SECRET);
    for a in ["you", "me"] {
        assert_eq!(client.get_x(a).await.unwrap(), format!("get_x {a}"));
        let probe = client.probe_x(a).await.unwrap();
        assert_eq!(probe.headers()["x-which"], format!("probe_x {a}"));
    }
    for b in ["x", "y"] {
        assert_eq!(client.post_me(b).await.unwrap(), format!("post_me {b}"));
        assert_eq!(client.get_me(b).await.unwrap(), format!("get_me {b}"));
    }
    for (a, b) in [("me", "you"), ("me", "1"), ("2", "you"), ("3", "4")] {
        assert_eq!(client.put_w(a, b).await.unwrap(), format!("put_w {a} {b}"));
    }
    for (b, c) in [("you", "z"), ("1", "z"), ("you", "2"), ("3", "4")] {
        assert_eq!(
            client.delete_w(b, c).await.unwrap(),
            format!("delete_w {b} {c}")
        );
    }
    for (a, c) in [("me", "z"), ("1", "z"), ("me", "2"), ("3", "4")] {
        assert_eq!(
            client.patch_w(a, c).await.unwrap(),
            format!("patch_w {a} {c}")
        );
    }
}

/// Shared paths beside methods under `#[cfg]`, compiled in and out.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait Conditional {
    #[get("/c/<a>/m/z")]
    async fn get_z(&self, a: &str) -> Result<String, Error>;

    #[post("/c/a/<b>/<c>")]
    async fn post_a(&self, b: &str, c: &str) -> Result<String, Error>;

    #[cfg(test)]
    #[put("/c/a/m/<d>")]
    async fn put_m(&self, d: &str) -> Result<String, Error>;

    #[cfg(test)]
    #[get("/c/a/m/<d>")]
    async fn get_m(&self, d: &str) -> Result<String, Error>;

    #[get("/d/a/<b>/z")]
    async fn get_a(&self, b: &str) -> Result<String, Error>;

    #[post("/d/<a>/m/<c>")]
    async fn post_m(&self, a: &str, c: &str) -> Result<String, Error>;

    #[put("/d/<a>/<b>/z")]
    async fn put_z(&self, a: &str, b: &str) -> Result<String, Error>;

    #[cfg(any())]
    #[put("/d/a/m/<d>")]
    async fn put_gone(&self, d: &str) -> Result<String, Error>;
}

#[derive(Clone)]
struct ConditionalImpl;

impl Conditional for ConditionalImpl {
    async fn get_z(&self, a: &str) -> Result<String, Error> {
        Ok(format!("get_z {a}"))
    }
    async fn post_a(&self, b: &str, c: &str) -> Result<String, Error> {
        Ok(format!("post_a {b} {c}"))
    }
    #[cfg(test)]
    async fn put_m(&self, d: &str) -> Result<String, Error> {
        Ok(format!("put_m {d}"))
    }
    #[cfg(test)]
    async fn get_m(&self, d: &str) -> Result<String, Error> {
        Ok(format!("get_m {d}"))
    }
    async fn get_a(&self, b: &str) -> Result<String, Error> {
        Ok(format!("get_a {b}"))
    }
    async fn post_m(&self, a: &str, c: &str) -> Result<String, Error> {
        Ok(format!("post_m {a} {c}"))
    }
    async fn put_z(&self, a: &str, b: &str) -> Result<String, Error> {
        Ok(format!("put_z {a} {b}"))
    }
    #[cfg(any())]
    async fn put_gone(&self, d: &str) -> Result<String, Error> {
        Ok(format!("put_gone {d}"))
    }
}

/// A path two routes share is not made a route of its own where a method under `#[cfg]`
/// could match some of it: compiled in, it keeps the requests of its own route
/// (`PUT /c/a/m/z`), and compiled out, it takes none from the method of its verb that is left
/// (`PUT /d/a/m/z` reaches `put_z`).
#[tokio::test]
async fn a_method_under_cfg_keeps_its_requests_and_compiled_out_takes_none() {
    let router = ConditionalServer::new(ConditionalImpl)
        .verifier(Verifier::new().service("billing", SECRET))
        .into_router();
    let client: ConditionalClient = comms_tests::plain_client(&serve(router).await, SECRET);
    for d in ["y", "z"] {
        assert_eq!(client.put_m(d).await.unwrap(), format!("put_m {d}"));
        assert_eq!(client.get_m(d).await.unwrap(), format!("get_m {d}"));
    }
    assert_eq!(client.put_z("a", "n").await.unwrap(), "put_z a n");
    assert_eq!(client.put_z("a", "m").await.unwrap(), "put_z a m");
}

/// Parameters are named by their place in the router (`{p1}` for the second segment), so an
/// application adds another verb at a generated route by naming them so.
#[tokio::test]
async fn a_route_added_at_a_generated_path_naming_parameters_by_place_is_served() {
    let added = axum::Router::new().route(
        "/items/{p1}",
        axum::routing::put(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                format!("replaced {id}")
            },
        ),
    );
    let router = ItemsServer::new(ItemsImpl)
        .unverified()
        .into_router()
        .merge(added);
    let url = serve(router).await;
    let put = reqwest::Client::new()
        .put(format!("{url}/items/9"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.text().await.unwrap(), "replaced 9");
    let got = reqwest::get(format!("{url}/items/9")).await.unwrap();
    assert_eq!(got.text().await.unwrap(), "\"item 9\"");
}

/// Two traits naming one place of their routes differently, served by one router.
#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SERVER_SECRET"
)]
pub trait ItemsAdmin {
    #[put("/items/<item_id>")]
    async fn replace(&self, item_id: &str) -> Result<String, Error>;
}

impl ItemsAdmin for ItemsImpl {
    async fn replace(&self, item_id: &str) -> Result<String, Error> {
        Ok(format!("replaced {item_id}"))
    }
}

#[tokio::test]
async fn two_traits_routers_merge_into_one() {
    let router = ItemsServer::new(ItemsImpl)
        .unverified()
        .into_router()
        .merge(ItemsAdminServer::new(ItemsImpl).unverified().into_router());
    let url = serve(router).await;
    let http = reqwest::Client::new();
    let put = http.put(format!("{url}/items/9")).send().await.unwrap();
    assert_eq!(put.text().await.unwrap(), "\"replaced 9\"");
}

/// A literal route compiled out takes nothing from the parameter routes beside it.
#[tokio::test]
async fn a_literal_route_compiled_out_leaves_its_requests_to_the_parameter_route() {
    let url = serve(ItemsServer::new(ItemsImpl).unverified().into_router()).await;
    let get = reqwest::get(format!("{url}/items/mine")).await.unwrap();
    assert_eq!(get.text().await.unwrap(), "\"item mine\"");
}

#[tokio::test]
async fn literal_segments_starting_with_a_colon_or_a_star_are_served() {
    let url = serve(accounts(Verifier::new().service("billing", SECRET))).await;
    let client: AccountsClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.freeze(4).await.unwrap(), "froze 4");
    assert_eq!(client.every().await.unwrap(), "every");
    // Literal: another name at that place is not the route.
    let other = client
        .executor()
        .execute(Call::post("/accounts/4/freeze"))
        .await;
    assert_eq!(other.unwrap_err().status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn behind_a_verify_layer_sharing_its_verifier_each_request_is_admitted_once() {
    // The layer protects the service's own routes too; its verifier is the server's (one
    // nonce store, one set of keys).
    let verifier = Verifier::new().service("billing", SECRET);
    let router = accounts(verifier.clone())
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier.clone()));
    let url = serve(router).await;
    let client: AccountsClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.get(4).await.unwrap(), 4);
    assert_eq!(client.root().await.unwrap(), "billing");
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let health = exec.execute(Call::get("/health")).await.unwrap();
    assert_eq!(health.text().unwrap(), "ok");
    // One use a request, not one a gate.
    assert_eq!(verifier.key_usage()[0].requests, 3);
    // A legacy request, which has no nonce, counted once too.
    let legacy_verifier = verifier.clone().accept_legacy(true);
    let router = accounts(legacy_verifier.clone()).layer(VerifyLayer::new(legacy_verifier.clone()));
    let legacy_url = serve(router).await;
    let legacy = comms::Executor::builder()
        .base_url(&legacy_url)
        .service_id("billing")
        .secret(SECRET)
        .signing(comms::Signing::Legacy)
        .build()
        .unwrap();
    legacy.execute(Call::get("/accounts/7")).await.unwrap();
    let usage = &legacy_verifier.key_usage()[0];
    assert_eq!((usage.requests, usage.legacy_requests), (4, 1));
    // A request admitted once is refused when it comes again, by the layer in front.
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!(1))).await;
    let to_recorder: AccountsClient = comms_tests::plain_client(&recorder.url(), SECRET);
    to_recorder.get(1).await.unwrap();
    let captured = recorder.requests().remove(0);
    assert_eq!(resend(&url, &captured).await, 200);
    assert_eq!(resend(&url, &captured).await, 401);
}

/// Sends `request` again as it was recorded (its `Host` too, which its signature covers) to
/// the server at `url`, and gives the status.
async fn resend(url: &str, request: &comms_tests::Recorded) -> u16 {
    let mut sent =
        reqwest::Client::new().request(request.method.clone(), format!("{url}{}", request.uri));
    for (name, value) in &request.headers {
        sent = sent.header(name, value);
    }
    let response = sent.body(request.body.clone()).send().await.unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn nested_under_the_base_urls_path_every_route_is_served() {
    let inner = accounts(Verifier::new().service("billing", SECRET));
    let url = serve(axum::Router::new().nest_service("/api", inner)).await;
    let client: AccountsClient = comms_tests::plain_client(&format!("{url}/api"), SECRET);
    // `/` is sent as `/api/`, which `nest_service` routes (and `nest` would not).
    assert_eq!(client.root().await.unwrap(), "billing");
    assert_eq!(client.get(3).await.unwrap(), 3);
    assert_eq!(client.file(5, "a/b").await.unwrap(), "get 5 a/b");
}

/// The request a client of `service` (signing with `secret`) sends for `GET /`, as `recorder`
/// received it.
async fn captured(
    recorder: &comms_tests::TestServer,
    service: &str,
    secret: &str,
) -> comms_tests::Recorded {
    let before = recorder.requests().len();
    comms_tests::plain_executor(&recorder.url(), service, secret)
        .execute(Call::get("/"))
        .await
        .unwrap();
    recorder.requests().remove(before)
}

/// `request` with `other`'s signature put before its own, under the label `first`.
fn signed_twice(
    request: &comms_tests::Recorded,
    other: &comms_tests::Recorded,
) -> comms_tests::Recorded {
    let mut twice = request.clone();
    for header in ["signature-input", "signature"] {
        let member = |r: &comms_tests::Recorded| {
            r.header(header)
                .unwrap()
                .strip_prefix("comms=")
                .unwrap()
                .to_owned()
        };
        let value = format!("first={}, comms={}", member(other), member(request));
        twice.headers.insert(header, value.parse().unwrap());
    }
    twice
}

#[tokio::test]
async fn behind_a_verify_layer_checking_another_signature_the_server_records_its_own_nonce() {
    // The layer knows a gateway's key besides billing's, and picks the first signature it can
    // check; the server knows billing's only. A gateway that captured a request of billing's
    // puts a fresh signature of its own before billing's: the layer checks that one, the
    // server billing's, whose nonce it must record itself.
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!("x")))
            .await;
    let billings = captured(&recorder, "billing", SECRET).await;
    let layer = Verifier::new()
        .service("billing", SECRET)
        .service("gateway", "gateway-secret");
    let router =
        accounts(Verifier::new().service("billing", SECRET)).layer(VerifyLayer::new(layer));
    let url = serve(router).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let gateways = captured(&recorder, "gateway", "gateway-secret").await;
        statuses.push(resend(&url, &signed_twice(&billings, &gateways)).await);
    }
    assert_eq!(statuses, [200, 401, 401]);
}

#[tokio::test]
async fn behind_a_verify_layer_sharing_its_store_a_request_signed_twice_passes_once() {
    // Layer and server know both keys and share one store: the layer records both nonces,
    // and the server, checking the same signature, records neither again; the request passes
    // once, whichever of its signatures comes first.
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!("x")))
            .await;
    let billings = captured(&recorder, "billing", SECRET).await;
    let gateways = captured(&recorder, "gateway", "gateway-secret").await;
    let verifier = Verifier::new()
        .service("billing", SECRET)
        .service("gateway", "gateway-secret");
    let router = accounts(verifier.clone()).layer(VerifyLayer::new(verifier));
    let url = serve(router).await;
    let statuses = [
        resend(&url, &signed_twice(&billings, &gateways)).await,
        resend(&url, &signed_twice(&billings, &gateways)).await,
        resend(&url, &signed_twice(&gateways, &billings)).await,
        resend(&url, &billings).await,
    ];
    assert_eq!(statuses, [200, 401, 401, 401]);
}

/// A nonce store the replicas of a fleet share, as a Redis one is.
#[derive(Clone, Default)]
struct FleetNonces(Arc<comms::verify::MemoryNonceStore>);

impl comms::verify::NonceStore for FleetNonces {
    fn check_and_insert<'a>(
        &'a self,
        service_id: &'a str,
        nonce: &'a str,
        now: std::time::SystemTime,
        keep_until: std::time::SystemTime,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<bool, comms::BoxError>> + Send + 'a>,
    > {
        self.0.check_and_insert(service_id, nonce, now, keep_until)
    }

    fn location(&self) -> Option<String> {
        Some(format!("fleet {:p}", Arc::as_ptr(&self.0)))
    }
}

#[tokio::test]
async fn behind_a_verify_layer_with_a_store_of_its_own_the_server_records_in_the_fleets() {
    // Each replica's server records nonces in the store the fleet shares; the layer in front
    // of it, guarding a route of its own, keeps them in the replica's memory. A request
    // replayed to the other replica passes that layer, and is refused by the server.
    let fleet = FleetNonces::default();
    let replica = || {
        let server = accounts(
            Verifier::new()
                .service("billing", SECRET)
                .nonce_store(fleet.clone()),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
        server.layer(VerifyLayer::new(Verifier::new().service("billing", SECRET)))
    };
    let (a, b) = (serve(replica()).await, serve(replica()).await);
    let recorder =
        comms_tests::TestServer::always(comms_tests::Reply::json(200, serde_json::json!(1))).await;
    let to_recorder: AccountsClient = comms_tests::plain_client(&recorder.url(), SECRET);
    to_recorder.get(1).await.unwrap();
    let captured = recorder.requests().remove(0);
    assert_eq!(resend(&a, &captured).await, 200);
    assert_eq!(
        resend(&b, &captured).await,
        401,
        "the replay on the other replica"
    );
    // A genuine request to each is admitted, by both gates.
    for url in [&a, &b] {
        let client: AccountsClient = comms_tests::plain_client(url, SECRET);
        assert_eq!(client.get(4).await.unwrap(), 4);
    }
    // A layer on its own instance of the fleet's store, which says it is the same place: the
    // server leaves the nonce to it, and a genuine request is admitted once.
    let fleets = || {
        Verifier::new()
            .service("billing", SECRET)
            .nonce_store(fleet.clone())
    };
    let url = serve(accounts(fleets()).layer(VerifyLayer::new(fleets()))).await;
    let client: AccountsClient = comms_tests::plain_client(&url, SECRET);
    assert_eq!(client.get(5).await.unwrap(), 5);
    to_recorder.get(2).await.unwrap();
    let captured = recorder.requests().pop().unwrap();
    assert_eq!(resend(&url, &captured).await, 200);
    assert_eq!(resend(&url, &captured).await, 401);
}

#[test]
fn a_route_in_axum_0_7_syntax_added_to_a_generated_router_still_gets_axum_s_advice() {
    // `Directory` has no literal segment starting with `:` or `*`: its router keeps axum's
    // check, which tells a route written the 0.7 way from a literal one.
    let added = std::panic::catch_unwind(|| {
        DirectoryServer::new(DirectoryImpl::default())
            .unverified()
            .into_router()
            .route("/users/:id", axum::routing::get(|| async { "" }))
    });
    let panic = added.expect_err("axum refuses `/users/:id`");
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("without_v07_checks"), "{message}");
}
