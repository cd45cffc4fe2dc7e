//! Every verb, argument and return kind through a generated server and back; what a bad
//! value, a bad signature and a panicking method get.

use super::*;

#[tokio::test]
async fn every_verb_argument_and_return_round_trips() {
    let (service, client, _) = pair().await;
    assert_eq!(
        client.get_user(7).await.unwrap(),
        User {
            id: 7,
            name: "user 7".into()
        }
    );
    assert_eq!(
        client
            .list(
                2,
                Some(50),
                vec!["a b".into(), "x&y=z".into()],
                &[3, 1],
                "+1 %2B/?"
            )
            .await
            .unwrap(),
        [
            "page=2",
            "per_page=Some(50)",
            r#"tag=["a b", "x&y=z"]"#,
            "ids=[3, 1]",
            "q=+1 %2B/?"
        ]
    );
    // Borrowed items and a borrowed `Option`, as a client-only trait may declare them.
    assert_eq!(
        client
            .labels(&["a", "b c"], vec!["k"], &Some("x".into()), &None)
            .await
            .unwrap(),
        [
            r#"tag=["a", "b c"]"#,
            r#"kind=["k"]"#,
            r#"q=Some("x")"#,
            "scope=None"
        ]
    );
    assert_eq!(
        client.list(1, None, vec![], &[], "").await.unwrap()[1..4],
        ["per_page=None", "tag=[]", "ids=[]"]
    );
    let new = NewUser {
        name: "Zoë \"quoted\"".into(),
    };
    assert_eq!(client.create(&new).await.unwrap().name, new.name);
    client.replace(7, &new).await.unwrap();
    assert_eq!(
        client.rename(7, "Ada").await.unwrap(),
        User {
            id: 7,
            name: "Ada".into()
        }
    );
    client.delete(7).await.unwrap();
    assert_eq!(
        client
            .file("a/b ?", "docs/r\u{e9}sum\u{e9} 1.pdf")
            .await
            .unwrap(),
        "a/b ?|docs/r\u{e9}sum\u{e9} 1.pdf",
        "a path value is one segment, a trailing one keeps its slashes"
    );
    assert_eq!(
        client.me("req-1", Some("acme".into())).await.unwrap(),
        ["req-1", r#"Some("acme")"#]
    );
    assert_eq!(client.me("req-2", None).await.unwrap()[1], "None");
    assert_eq!(
        client.whoami().await.unwrap(),
        ["billing", "billing", "rfc9421"],
        "comms::server::caller() is the verified caller"
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 12);
}

/// An empty value for an `Option` query argument, as an HTML form sends an empty field, is
/// `None` where the type cannot be empty (a number), and the empty text where it can.
#[tokio::test]
async fn an_empty_optional_query_value_is_none_unless_its_type_can_be_empty() {
    let (_, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let listed: Vec<String> = exec
        .execute(
            Call::get("/users")
                .query("page", "1")
                .query("per-page", "")
                .query("q", ""),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed[..2], ["page=1", "per_page=None"]);
    assert_eq!(listed[4], "q=");
    let labels: Vec<String> = exec
        .execute(Call::get("/labels").query("q", ""))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(labels[2], r#"q=Some("")"#);
    // A value that is not empty still has to parse.
    let err = exec
        .execute(
            Call::get("/users")
                .query("page", "1")
                .query("per-page", " "),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadRequest(_)), "{err}");
}

#[tokio::test]
async fn a_value_that_does_not_parse_is_a_400_naming_the_argument() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let cases = [
        (Call::get("/users/seven"), "path parameter `id`"),
        (
            Call::get("/users").query("q", "x"),
            "query parameter `page` is missing",
        ),
        (
            Call::get("/users").query("page", "-1").query("q", "x"),
            "query parameter `page`",
        ),
        (
            Call::get("/users")
                .query("page", "1")
                .query("page", "2")
                .query("q", "x"),
            "query parameter `page` is given more than once",
        ),
        (
            Call::get("/users")
                .query("page", "1")
                .query("ids", "1")
                .query("ids", "x")
                .query("q", "x"),
            "query parameter `ids`",
        ),
        (Call::get("/me"), "header `X-Request-Id` is missing"),
        (
            Call::post("/users").body(&b"{\"nom\": 1}"[..], "application/json"),
            "the body (`user`) does not parse",
        ),
    ];
    for (call, expected) in cases {
        let err = exec.execute(call).await.unwrap_err();
        match &err {
            Error::BadRequest(e) => assert!(
                e.message().is_some_and(|m| m.contains(expected)),
                "{expected}: {:?}",
                e.message()
            ),
            other => panic!("{expected}: {other}"),
        }
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no method ran");
}

/// A JSON body may begin with a UTF-8 byte order mark, which RFC 8259 lets a parser ignore
/// (some serializers write one); anything else before the value is still a 400.
#[tokio::test]
async fn a_json_body_after_a_byte_order_mark_parses() {
    let (service, _, url) = pair().await;
    let exec = comms_tests::plain_executor(&url, "billing", SECRET);
    let created: User = exec
        .execute(Call::post("/users").body(
            &b"\xEF\xBB\xBF{\"name\": \"Zo\xC3\xAB\"}"[..],
            "application/json",
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(created.name, "Zoë");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    // Only a whole mark, and only one.
    for body in [
        &b"\xEF\xBB{\"name\": \"a\"}"[..],
        b"\xEF\xBB\xBF\xEF\xBB\xBF{\"name\": \"a\"}",
    ] {
        let err = exec
            .execute(Call::post("/users").body(body, "application/json"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadRequest(_)), "{err}");
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_get_a_401() {
    let (service, _, url) = pair().await;
    let plain = reqwest::Client::new()
        .get(format!("{url}/users/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert!(!plain.headers().contains_key("connection"));
    // Refused unread, a body would be left on the connection: the server says it closes it.
    let plain = reqwest::Client::new()
        .put(format!("{url}/users/1"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(plain.headers()["connection"], "close");
    let intruder = client_of(&url, "not-the-secret", RetryConfig::none());
    assert!(matches!(
        intruder.get_user(1).await,
        Err(Error::Unauthorized(_))
    ));
    // A server never given a verifier refuses everything.
    let closed = serve(DirectoryServer::new(DirectoryImpl::default()).into_router()).await;
    let client = client_of(&closed, SECRET, RetryConfig::none());
    assert!(matches!(
        client.get_user(1).await,
        Err(Error::Unauthorized(_))
    ));
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_panicking_method_is_a_500_and_the_server_keeps_serving() {
    let (service, client, _) = pair().await;
    let err = client.panics(0).await.unwrap_err();
    assert!(
        matches!(&err, Error::Server(e) if e.status() == 500),
        "{err}"
    );
    assert_eq!(client.panics(3).await.unwrap(), 3);
    assert_eq!(client.get_user(1).await.unwrap().id, 1);
    assert_eq!(service.calls.load(Ordering::SeqCst), 3);
}
