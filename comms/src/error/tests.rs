//! `Error`'s classification, accessors, messages and redaction.

use super::*;

fn err(status: u16) -> Error {
    HttpError::new(StatusCode::from_u16(status).unwrap())
        .with_request(Method::GET, "http://x/y")
        .into()
}

#[test]
fn status_maps_to_variant() {
    assert!(matches!(err(400), Error::BadRequest(_)));
    assert!(matches!(err(401), Error::Unauthorized(_)));
    assert!(matches!(err(403), Error::Forbidden(_)));
    assert!(matches!(err(404), Error::NotFound(_)));
    assert!(matches!(err(409), Error::Conflict(_)));
    assert!(matches!(err(422), Error::UnprocessableEntity(_)));
    assert!(matches!(err(429), Error::TooManyRequests(_)));
    assert!(matches!(err(500), Error::Server(_)));
    assert!(matches!(err(599), Error::Server(_)));
    assert!(matches!(err(302), Error::Status(_)));
    assert!(matches!(err(418), Error::Status(_)));
    assert_eq!(err(418).status(), Some(StatusCode::IM_A_TEAPOT));
}

/// Whether an error is of one variant.
type IsVariant = fn(&Error) -> bool;

#[test]
fn constructors_build_their_variant_status_and_message() {
    let cases: [(Error, u16, IsVariant); 8] = [
        (Error::bad_request("m"), 400, |e| {
            matches!(e, Error::BadRequest(_))
        }),
        (Error::unauthorized("m"), 401, |e| {
            matches!(e, Error::Unauthorized(_))
        }),
        (Error::forbidden("m"), 403, |e| {
            matches!(e, Error::Forbidden(_))
        }),
        (Error::not_found("m"), 404, |e| {
            matches!(e, Error::NotFound(_))
        }),
        (Error::conflict("m"), 409, |e| {
            matches!(e, Error::Conflict(_))
        }),
        (Error::unprocessable("m"), 422, |e| {
            matches!(e, Error::UnprocessableEntity(_))
        }),
        (Error::too_many_requests("m"), 429, |e| {
            matches!(e, Error::TooManyRequests(_))
        }),
        (Error::internal("m"), 500, |e| matches!(e, Error::Server(_))),
    ];
    for (error, status, is_variant) in cases {
        assert!(is_variant(&error), "{error:?}");
        assert_eq!(error.status().map(|s| s.as_u16()), Some(status));
        let http = error.http_error().unwrap();
        assert_eq!(http.message(), Some("m"));
        assert_eq!((http.method(), http.url(), http.body()), (None, None, ""));
    }
}

#[test]
fn from_status_picks_the_variant() {
    let of = |status| Error::from_status(StatusCode::from_u16(status).unwrap(), "m");
    assert!(matches!(of(404), Error::NotFound(_)));
    assert!(matches!(of(422), Error::UnprocessableEntity(_)));
    assert!(matches!(of(502), Error::Server(_)));
    assert!(matches!(of(599), Error::Server(_)));
    assert!(matches!(of(418), Error::Status(_)));
    assert!(matches!(of(302), Error::Status(_)));
    assert!(matches!(of(200), Error::Status(_)));
    assert_eq!(of(418).http_error().unwrap().message(), Some("m"));
}

#[test]
fn display_names_the_request_only_when_there_was_one() {
    assert_eq!(
        Error::not_found("no user 7").to_string(),
        "404 Not Found: no user 7"
    );
    let bare: Error = HttpError::new(StatusCode::CONFLICT).into();
    assert_eq!(bare.to_string(), "409 Conflict");
    let received: Error = HttpError::new(StatusCode::NOT_FOUND)
        .with_request(Method::GET, "http://h/users/7")
        .with_message("no user 7")
        .into();
    assert_eq!(
        received.to_string(),
        "404 Not Found for GET http://h/users/7: no user 7"
    );
    let decode = Error::Decode {
        method: Some(Method::POST),
        url: Some("http://h/users".into()),
        source: "eof".into(),
    };
    assert_eq!(
        decode.to_string(),
        "error decoding response for POST http://h/users"
    );
}

#[test]
fn retry_after_is_kept_by_status_variants_only() {
    let wait = Duration::from_secs(2);
    let limited = Error::too_many_requests("slow").with_retry_after(wait);
    assert_eq!(limited.http_error().unwrap().retry_after(), Some(wait));
    assert!(format!("{limited:?}").contains("retry_after: Some(2s)"));
    assert_eq!(limited.to_string(), "429 Too Many Requests: slow");
    assert_eq!(
        Error::too_many_requests("slow")
            .http_error()
            .unwrap()
            .retry_after(),
        None
    );
    let config = Error::config("KEY", "missing").with_retry_after(wait);
    assert!(matches!(config, Error::Config { .. }));
}

#[test]
fn method_and_url_of_every_variant_that_knows_the_request() {
    const URL: &str = "http://h/users/7";
    let received = |status| -> Error {
        HttpError::new(StatusCode::from_u16(status).unwrap())
            .with_request(Method::GET, URL)
            .into()
    };
    let transport = |connect| Error::Transport {
        method: Method::GET,
        url: URL.into(),
        connect,
        source: "reset".into(),
    };
    let known = [
        received(404),
        received(503),
        received(302),
        transport(true),
        transport(false),
        Error::Timeout {
            method: Method::GET,
            url: URL.into(),
            after: Duration::from_secs(1),
        },
        Error::Decode {
            method: Some(Method::GET),
            url: Some(URL.into()),
            source: "eof".into(),
        },
    ];
    for error in known {
        assert_eq!(
            (error.method(), error.url()),
            (Some(&Method::GET), Some(URL)),
            "{error:?}"
        );
    }
    let unknown = [
        Error::not_found("built"),
        HttpError::new(StatusCode::BAD_GATEWAY).into(),
        Error::Decode {
            method: None,
            url: None,
            source: "eof".into(),
        },
        Error::CircuitOpen {
            authority: "http://h:80".into(),
            retry_in: Duration::from_secs(1),
        },
        Error::encode("bad header"),
        Error::config("base_url", "missing"),
    ];
    for error in unknown {
        assert_eq!((error.method(), error.url()), (None, None), "{error:?}");
    }
}

#[test]
fn only_a_transport_error_that_never_connected_is_a_connect_error() {
    let transport = |connect| Error::Transport {
        method: Method::POST,
        url: "http://h/orders".into(),
        connect,
        source: "io".into(),
    };
    assert!(transport(true).is_connect());
    assert!(!transport(false).is_connect());
    // Both are transient; their messages say whether the connection was ever made.
    assert!(transport(true).is_retryable() && transport(false).is_retryable());
    assert_eq!(
        transport(true).to_string(),
        "could not connect for POST http://h/orders"
    );
    assert_eq!(
        transport(false).to_string(),
        "connection failed during POST http://h/orders"
    );
    let timeout = Error::Timeout {
        method: Method::POST,
        url: "http://h/orders".into(),
        after: Duration::from_secs(1),
    };
    assert!(!timeout.is_connect());
    assert!(!err(503).is_connect());
    assert!(!Error::config("k", "m").is_connect());
}

#[test]
fn retryable_statuses() {
    for s in [429, 500, 502, 503, 504] {
        assert!(err(s).is_retryable(), "{s}");
    }
    for s in [400, 401, 404, 409, 501, 505, 302] {
        assert!(!err(s).is_retryable(), "{s}");
    }
}

#[test]
fn message_is_extracted_from_json() {
    let e = HttpError::from_response(
        StatusCode::NOT_FOUND,
        Method::GET,
        "http://x/users/1".into(),
        br#" {"message": "no such user", "code": 7}"#,
    );
    assert_eq!(e.message(), Some("no such user"));
    assert_eq!(
        e.to_string(),
        "404 Not Found for GET http://x/users/1: no such user"
    );
    let plain = HttpError::from_response(StatusCode::NOT_FOUND, Method::GET, "u".into(), b"nope");
    assert_eq!(plain.message(), None);
    assert_eq!(plain.body(), "nope");
}

#[test]
fn body_excerpt_of_binary_is_bounded() {
    let e = HttpError::new(StatusCode::BAD_GATEWAY).with_body(&[0xff; 5000]);
    assert!(e.body().len() <= BODY_EXCERPT_LIMIT + '…'.len_utf8());
    assert!(e.body().ends_with('…'));
    let short = HttpError::new(StatusCode::BAD_GATEWAY).with_body(b"tiny");
    assert_eq!(short.body(), "tiny");
}

#[test]
fn body_excerpt_is_bounded_at_a_char_boundary() {
    let body = "é".repeat(BODY_EXCERPT_LIMIT);
    let e = HttpError::new(StatusCode::BAD_GATEWAY).with_body(body.as_bytes());
    assert!(e.body().len() <= BODY_EXCERPT_LIMIT + '…'.len_utf8());
    assert!(e.body().ends_with('…'));
    assert!(!e.body().contains('\u{FFFD}'));
}

#[test]
fn an_open_breaker_says_when_its_next_probe_is_or_that_one_is_in_flight() {
    let open = |retry_in| {
        Error::CircuitOpen {
            authority: "http://h:80".into(),
            retry_in,
        }
        .to_string()
    };
    assert_eq!(
        open(Duration::from_millis(1500)),
        "circuit breaker open for http://h:80; next probe in 1.5s"
    );
    // Half-open with its probes out: no time to tell, rather than "in 0ns".
    assert_eq!(
        open(Duration::ZERO),
        "circuit breaker open for http://h:80; waiting for a probe in flight"
    );
}

#[test]
fn with_sources_shows_the_errors_under_an_error_once_each() {
    let missing = serde_json::from_str::<std::collections::HashMap<String, u64>>("{\"a\": \"x\"}")
        .unwrap_err();
    let decode = Error::Decode {
        method: Some(Method::GET),
        url: Some("http://h/invoices/7".into()),
        source: Box::new(missing),
    };
    assert_eq!(
        WithSources(&decode).to_string(),
        "error decoding response for GET http://h/invoices/7: invalid type: string \"x\", \
         expected u64 at line 1 column 9"
    );
    // A source whose text the error above it already shows is not repeated.
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);
    let io = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let transport = Error::Transport {
        method: Method::GET,
        url: "http://h/y".into(),
        connect: true,
        source: Box::new(Outer(io())),
    };
    assert_eq!(
        WithSources(&transport).to_string(),
        "could not connect for GET http://h/y: outer: refused"
    );
    assert_eq!(WithSources(&err(404)).to_string(), err(404).to_string());
}
