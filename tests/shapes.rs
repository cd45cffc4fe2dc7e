//! Request shapes on the wire: a flattened query struct, a form body and a multipart body,
//! checked byte for byte as a loopback server received them, with their signatures verified;
//! refused before sending when they cannot be encoded; and a multipart upload under a
//! connection reset, resent only when the call may be repeated.

use std::time::Duration;

use comms::multipart::{Multipart, Part};
use comms::verify::Verifier;
use comms::{BreakerConfig, Call, Error, RetryConfig, service_client};
use comms_tests::{Fault, FaultServer, Recorded, Reply, TestServer};
use serde::{Deserialize, Serialize};

const SECRET: &str = "shapes-secret";

#[derive(Debug, Default, Deserialize, PartialEq, Serialize)]
pub struct Filter {
    #[serde(rename = "q")]
    pub text: String,
    pub min: Option<u32>,
    pub tag: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Paging {
    pub page: u32,
    pub size: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Nested {
    pub inner: Vec<Vec<u8>>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Login {
    pub user: String,
    pub pass: String,
    pub remember: bool,
    pub scope: Vec<String>,
    pub otp: Option<u32>,
}

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_SHAPES_SECRET"
)]
pub trait Shapes {
    #[get("/search")]
    async fn search(
        &self,
        #[query] page: u32,
        #[query(flatten)] filter: &Filter,
        #[query(rename = "sort-by")] sort: Option<&str>,
    ) -> Result<(), Error>;

    #[get("/two")]
    async fn two(
        &self,
        #[query(flatten)] filter: &Filter,
        #[query(flatten)] paging: Paging,
    ) -> Result<(), Error>;

    #[get("/nested")]
    async fn nested(&self, #[query(flatten)] nested: &Nested) -> Result<(), Error>;

    #[get("/clash")]
    async fn clash(
        &self,
        #[query] min: u32,
        #[query(flatten)] filter: &Filter,
    ) -> Result<(), Error>;

    #[post("/login")]
    async fn login(&self, #[form] login: &Login) -> Result<(), Error>;

    #[put("/nested/<id>")]
    async fn nested_form(
        &self,
        id: u32,
        #[query] dry: bool,
        #[form] form: Nested,
    ) -> Result<(), Error>;

    #[post("/upload")]
    async fn upload(&self, #[query] album: u32, #[multipart] form: &Multipart)
    -> Result<(), Error>;

    #[post("/upload/safe", idempotent)]
    async fn upload_idempotent(&self, #[multipart] form: Multipart) -> Result<(), Error>;

    #[put("/raw/bytes")]
    async fn raw_bytes(&self, #[body(raw)] data: bytes::Bytes) -> Result<(), Error>;

    #[put("/raw/vec")]
    async fn raw_vec(&self, #[body(raw)] data: Vec<u8>) -> Result<(), Error>;

    #[post("/raw/slice")]
    async fn raw_slice(
        &self,
        #[body(raw)] data: &[u8],
        #[header("Content-Type")] content_type: &str,
    ) -> Result<(), Error>;

    #[patch("/raw/text")]
    async fn raw_text(
        &self,
        #[header("Content-Type")] content_type: Option<&str>,
        #[body(raw)] text: &str,
    ) -> Result<(), Error>;
}

fn client(url: &str) -> ShapesClient {
    ShapesClient::builder()
        .base_url(url)
        .secret(SECRET)
        .retry(RetryConfig::default().base_delay(Duration::from_millis(1)))
        .breaker(BreakerConfig::disabled())
        .build()
        .unwrap()
}

async fn assert_signed(r: &Recorded) {
    Verifier::new()
        .service("billing", SECRET)
        .verify(&r.method, &r.uri, &r.headers, &r.body)
        .await
        .unwrap_or_else(|e| panic!("{} {} failed verification: {e}", r.method, r.uri));
}

fn filter(text: &str, min: Option<u32>, tags: &[&str]) -> Filter {
    Filter {
        text: text.into(),
        min,
        tag: tags.iter().map(|t| t.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_flattened_struct_is_query_pairs_encoded_like_plain_ones_and_signed() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    shapes
        .search(2, &filter("a b+c&d=é~*", None, &["x", "y z"]), Some("name"))
        .await
        .unwrap();
    shapes
        .search(1, &filter("", Some(7), &[]), None)
        .await
        .unwrap();
    shapes
        .two(
            &filter("t", None, &["one"]),
            Paging {
                page: 3,
                size: Some(10),
            },
        )
        .await
        .unwrap();

    let seen = server.requests();
    let targets: Vec<String> = seen.iter().map(|r| r.uri.to_string()).collect();
    assert_eq!(
        targets,
        [
            // `None` left out, a `Vec` as a repeated key, `#[serde(rename)]` honoured, every
            // byte outside `A-Z a-z 0-9 - . _ ~` percent-encoded as `#[query]` values are.
            "/search?page=2&q=a%20b%2Bc%26d%3D%C3%A9~%2A&tag=x&tag=y%20z&sort-by=name",
            "/search?page=1&q=&min=7",
            "/two?q=t&tag=one&page=3&size=10",
        ]
    );
    for r in &seen {
        assert_signed(r).await;
        assert!(r.body.is_empty() && r.header("content-type").is_none());
    }
    // The same value through `Call::query` encodes to the same bytes.
    let by_hand = Call::get("/search")
        .query("page", 2)
        .query("q", "a b+c&d=é~*")
        .query("tag", "x")
        .query("tag", "y z");
    assert!(targets[0].starts_with(&format!("/search?{}", by_hand.query_string())));
}

#[tokio::test]
async fn a_query_key_set_twice_is_an_encode_error_and_nothing_is_sent() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    #[derive(Serialize)]
    struct Clash {
        q: &'static str,
    }
    let exec = comms_tests::plain_executor(&server.url(), "billing", SECRET);
    let cases = [
        // A flattened key set before by a plain pair, and after.
        Call::get("/x")
            .query("min", 1)
            .query_flatten(&filter("a", Some(2), &[])),
        Call::get("/x")
            .query_flatten(&filter("a", None, &["t"]))
            .query("tag", "u"),
        // Two flattened values sharing a key.
        Call::get("/x")
            .query_flatten(&filter("a", None, &[]))
            .query_flatten(&Clash { q: "b" }),
    ];
    for call in cases {
        let query = call.query_string().to_owned();
        let err = exec.execute(call).await.unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{query}: {err}");
        assert!(
            err.to_string().contains("is set by a flattened value"),
            "{err}"
        );
    }
    // Through a generated method: a plain `#[query] min` and a flattened `min`.
    let err = shapes
        .clash(1, &filter("a", Some(2), &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(err.to_string().contains("`min`"), "{err}");
    // A nested value cannot be pairs.
    let err = shapes
        .nested(&Nested {
            inner: vec![vec![1]],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(server.count(), 0, "refused calls are never sent");
    // A key the flattened value leaves out is free for another pair.
    exec.execute(
        Call::get("/x")
            .query_flatten(&filter("a", None, &[]))
            .query("min", 1)
            .query("tag", "t"),
    )
    .await
    .unwrap();
    assert_eq!(server.requests()[0].uri, "/x?q=a&min=1&tag=t");
    shapes.clash(1, &filter("a", None, &[])).await.unwrap();
    assert_eq!(server.requests()[1].uri, "/clash?min=1&q=a");
}

fn login(user: &str, pass: &str, otp: Option<u32>) -> Login {
    Login {
        user: user.into(),
        pass: pass.into(),
        remember: true,
        scope: vec!["read".into(), "write all".into()],
        otp,
    }
}

#[tokio::test]
async fn a_form_body_is_sent_urlencoded_with_its_type_and_signed_through_its_digest() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    shapes
        .login(&login("ada lovelace", "p&=+é%", None))
        .await
        .unwrap();
    shapes.login(&login("", "", Some(123456))).await.unwrap();

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        &seen[0].body[..],
        b"user=ada+lovelace&pass=p%26%3D%2B%C3%A9%25&remember=true&scope=read&scope=write+all"
    );
    assert_eq!(
        &seen[1].body[..],
        b"user=&pass=&remember=true&scope=read&scope=write+all&otp=123456"
    );
    for r in &seen {
        assert_eq!(r.uri, "/login");
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            r.header("content-digest").unwrap(),
            comms::signing::content_digest(&r.body)
        );
        let input = r.header("signature-input").unwrap();
        assert!(
            input.contains(r#""content-digest" "content-type""#),
            "{input}"
        );
        assert_signed(r).await;
        // A body changed on the way is refused.
        let mut tampered = r.clone();
        tampered.body = bytes::Bytes::from(r.body.to_vec().repeat(2));
        assert!(
            Verifier::new()
                .service("billing", SECRET)
                .verify(
                    &tampered.method,
                    &tampered.uri,
                    &tampered.headers,
                    &tampered.body
                )
                .await
                .is_err()
        );
    }
    // By hand, the same bytes.
    let exec = comms_tests::plain_executor(&server.url(), "billing", SECRET);
    exec.execute(Call::post("/login").form(&login("ada lovelace", "p&=+é%", None)))
        .await
        .unwrap();
    assert_eq!(server.requests()[2].body, seen[0].body);
}

#[tokio::test]
async fn a_form_that_is_not_pairs_is_an_encode_error_and_nothing_is_sent() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    let nested = Nested {
        inner: vec![vec![1, 2]],
    };
    let err = shapes.nested_form(1, true, nested).await.unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(err.to_string().contains("form body"), "{err}");
    let exec = comms_tests::plain_executor(&server.url(), "billing", SECRET);
    let err = exec
        .execute(Call::post("/x").form(&"just text"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(server.count(), 0);
}

fn photo_form() -> Multipart {
    Multipart::new()
        .text("title", "Beach \"2026\"")
        .file(
            "photo",
            "beach\r\n1.jpg",
            "image/jpeg",
            vec![0xff, 0xd8, 0x00, 0x0d, 0x0a],
        )
        .part(Part::new("meta", r#"{"tags":["sea"]}"#).with_content_type("application/json"))
}

/// The boundary of a recorded multipart request.
fn boundary_of(r: &Recorded) -> String {
    r.header("content-type")
        .and_then(|t| t.strip_prefix("multipart/form-data; boundary="))
        .unwrap_or_else(|| panic!("not multipart: {:?}", r.header("content-type")))
        .to_owned()
}

#[tokio::test]
async fn a_multipart_body_is_framed_quoted_and_signed_through_its_digest() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    let form = photo_form();
    shapes.upload(7, &form).await.unwrap();
    shapes.upload(7, &form).await.unwrap();

    let seen = server.requests();
    let r = &seen[0];
    assert_eq!(r.uri, "/upload?album=7");
    let boundary = boundary_of(r);
    assert_eq!(boundary.len(), 38, "comms- and 32 hex digits: {boundary}");
    assert!(boundary[6..].bytes().all(|b| b.is_ascii_hexdigit()));
    let mut expected = format!(
        "--{boundary}\r\n\
         Content-Disposition: form-data; name=\"title\"\r\n\r\n\
         Beach \"2026\"\r\n\
         --{boundary}\r\n\
         Content-Disposition: form-data; name=\"photo\"; filename=\"beach%0D%0A1.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(&[0xff, 0xd8, 0x00, 0x0d, 0x0a]);
    expected.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"meta\"\r\n\
             Content-Type: application/json\r\n\r\n\
             {{\"tags\":[\"sea\"]}}\r\n\
             --{boundary}--\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(&r.body[..], &expected[..]);
    assert_eq!(
        r.header("content-digest").unwrap(),
        comms::signing::content_digest(&r.body)
    );
    assert!(
        r.header("signature-input")
            .unwrap()
            .contains(r#""content-digest" "content-type""#),
        "the boundary is covered with the content type"
    );
    for r in &seen {
        assert_signed(r).await;
    }
    assert_ne!(boundary_of(&seen[1]), boundary, "a boundary per body");
}

#[tokio::test]
async fn a_part_content_type_with_a_line_break_is_an_encode_error_and_nothing_is_sent() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    let form = Multipart::new().part(Part::new("f", "x").with_content_type("text/plain\r\nX: 1"));
    let err = shapes.upload(1, &form).await.unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert_eq!(server.count(), 0);
}

/// A server that reads each request and then resets the connection, twice, and answers after.
async fn resetting_twice() -> FaultServer {
    FaultServer::start(|_, i| match i {
        0 | 1 => Fault::ResetBeforeHead,
        _ => Fault::Reply(Reply::status(204)),
    })
    .await
}

#[tokio::test]
async fn a_multipart_upload_that_may_have_arrived_is_not_resent_unless_idempotent() {
    // Not idempotent: the request was read before the reset, so it is not sent again.
    let server = resetting_twice().await;
    let shapes = client(&server.url());
    let err = shapes.upload(1, &photo_form()).await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(server.count(), 1, "sent once");

    // Marked idempotent: resent, the same bytes with one Idempotency-Key, each attempt signed.
    let server = resetting_twice().await;
    let shapes = client(&server.url());
    shapes.upload_idempotent(photo_form()).await.unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 3, "two resets, then the answer");
    for r in &seen {
        assert_eq!(r.body, seen[0].body, "every attempt sends the same body");
        assert_eq!(r.header("content-type"), seen[0].header("content-type"));
        assert_eq!(
            r.header("idempotency-key"),
            seen[0].header("idempotency-key")
        );
        assert_signed(r).await;
    }
    assert!(seen[0].header("idempotency-key").is_some());
    let nonces: std::collections::HashSet<_> = seen.iter().map(|r| r.nonce()).collect();
    assert_eq!(nonces.len(), 3, "signed afresh");
}

#[tokio::test]
async fn a_raw_body_is_sent_as_it_is_with_its_type_and_signed_through_its_digest() {
    let server = TestServer::always(Reply::status(204)).await;
    let shapes = client(&server.url());
    // Bytes no JSON or text could carry as they are.
    let octets: Vec<u8> = (0..=255).chain([0, 0xff, b'\r', b'\n']).collect();
    shapes
        .raw_bytes(bytes::Bytes::from(octets.clone()))
        .await
        .unwrap();
    shapes.raw_vec(octets.clone()).await.unwrap();
    shapes.raw_vec(Vec::new()).await.unwrap();
    shapes.raw_slice(&octets[..3], "image/png").await.unwrap();
    shapes.raw_text(None, "ünïcode, as it is\n").await.unwrap();
    shapes
        .raw_text(Some("text/csv; charset=utf-8"), "a,b\r\n1,2\r\n")
        .await
        .unwrap();

    let seen = server.requests();
    let expected: [(&str, &[u8], &str); 6] = [
        ("/raw/bytes", &octets, "application/octet-stream"),
        ("/raw/vec", &octets, "application/octet-stream"),
        ("/raw/vec", b"", "application/octet-stream"),
        ("/raw/slice", &octets[..3], "image/png"),
        (
            "/raw/text",
            "ünïcode, as it is\n".as_bytes(),
            "text/plain; charset=utf-8",
        ),
        ("/raw/text", b"a,b\r\n1,2\r\n", "text/csv; charset=utf-8"),
    ];
    assert_eq!(seen.len(), expected.len());
    for (r, (path, body, content_type)) in seen.iter().zip(expected) {
        assert_eq!(r.uri, path);
        assert_eq!(&r.body[..], body, "{path}");
        assert_eq!(
            r.headers.get_all("content-type").iter().collect::<Vec<_>>(),
            [content_type],
            "{path}"
        );
        assert_eq!(
            r.header("content-digest").unwrap(),
            comms::signing::content_digest(body)
        );
        let input = r.header("signature-input").unwrap();
        assert!(
            input.contains(r#""content-digest" "content-type""#),
            "{input}"
        );
        assert_signed(r).await;
    }
    // By hand, the same bytes.
    let exec = comms_tests::plain_executor(&server.url(), "billing", SECRET);
    exec.execute(Call::put("/raw/vec").body(octets, "application/octet-stream"))
        .await
        .unwrap();
    assert_eq!(server.requests()[6].body, seen[1].body);
}
