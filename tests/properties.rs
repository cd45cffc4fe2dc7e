//! Hostile input, generated: no value can steer a request's route, a flattened query struct is
//! encoded exactly as plain query pairs are, the raw query is covered byte for byte, and the
//! verifier refuses (never panics on) any header soup.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use comms::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use comms::path::{push_query, push_segment, push_trailing};
use comms::verify::Verifier;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8().unwrap().into_owned()
}

/// The path the URL parser keeps for `path` (what reqwest puts on the request line).
fn wire_path(path: &str) -> String {
    reqwest::Url::parse(&format!("http://h{path}"))
        .unwrap()
        .path()
        .to_owned()
}

/// Strings rich in the characters that try to break out of a segment.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[./%?#\\\\a-z\u{e9}\u{202e}\u{0}\r\n ;=&+]{0,24}",
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("..%2f..%2fetc".to_owned()),
    ]
}

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the in-memory verifier never waits"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn a_segment_value_never_changes_the_route(value in hostile()) {
        let mut path = String::from("/base");
        match push_segment(&mut path, &value) {
            Ok(()) => {
                let segment = &path["/base/".len()..];
                prop_assert!(!segment.contains(['/', '?', '#', '\\']));
                prop_assert!(segment != "." && segment != "..");
                prop_assert_eq!(wire_path(&path), path.clone(), "the URL parser kept it as is");
                prop_assert_eq!(decode(segment), value);
            }
            Err(e) => {
                prop_assert!(value.is_empty() || value == "." || value == "..", "{e}");
                prop_assert_eq!(path, "/base", "nothing was appended");
            }
        }
    }

    #[test]
    fn a_trailing_value_stays_below_its_prefix(value in hostile()) {
        let mut path = String::from("/files");
        match push_trailing(&mut path, &value) {
            Ok(()) => {
                prop_assert!(path.starts_with("/files/"));
                prop_assert!(!path.starts_with("/files//"));
                prop_assert!(!path.contains(['?', '#', '\\']));
                for segment in path.split('/') {
                    prop_assert!(segment != "." && segment != "..");
                }
                prop_assert_eq!(wire_path(&path), path.clone());
                prop_assert_eq!(decode(&path["/files/".len()..]), value);
            }
            Err(_) => {
                prop_assert!(
                    value.is_empty()
                        || value.starts_with('/')
                        || value.split('/').any(|s| s == "." || s == "..")
                );
            }
        }
    }

    #[test]
    fn query_pairs_survive_the_round_trip(pairs in proptest::collection::vec((hostile(), hostile()), 0..6)) {
        let mut query = String::new();
        for (name, value) in &pairs {
            push_query(&mut query, name, value);
        }
        prop_assert!(!query.contains(['#', ' ']));
        let url = reqwest::Url::parse(&format!("http://h/p?{query}")).unwrap();
        prop_assert_eq!(url.query().unwrap_or(""), query.as_str());
        let back: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap();
                (decode(n), decode(v))
            })
            .collect();
        prop_assert_eq!(back, pairs.into_iter().filter(|_| true).collect::<Vec<_>>());
    }

    #[test]
    fn a_flattened_struct_is_encoded_as_its_pairs_one_by_one(
        text in hostile(),
        min in proptest::option::of(any::<i64>()),
        tags in proptest::collection::vec(hostile(), 0..4),
    ) {
        #[derive(serde::Serialize)]
        struct Filter<'a> {
            #[serde(rename = "q")]
            text: &'a str,
            min: Option<i64>,
            tag: &'a [String],
        }
        let filter = Filter { text: &text, min, tag: &tags };
        let flattened = comms::Call::get("/x").query_flatten(&filter);
        let mut by_hand = comms::Call::get("/x").query("q", &text);
        if let Some(min) = min {
            by_hand = by_hand.query("min", min);
        }
        for tag in &tags {
            by_hand = by_hand.query("tag", tag);
        }
        prop_assert_eq!(flattened.query_string(), by_hand.query_string());
    }

    #[test]
    fn the_raw_query_is_covered_byte_for_byte(
        signed in "[a-zA-Z0-9%&=+~._-]{0,30}",
        sent in "[a-zA-Z0-9%&=+~._-]{0,30}",
    ) {
        let at = |query: &str| format!("/items?{query}").parse::<Uri>();
        let (Ok(signed_uri), Ok(sent_uri)) = (at(&signed), at(&sent)) else {
            return Ok(());
        };
        let fields = [("content-digest", comms::signing::EMPTY_CONTENT_DIGEST)];
        let message = comms::signing::Message {
            method: "GET",
            authority: "h",
            path: "/items",
            query: signed_uri.query().unwrap_or(""),
            fields: &fields,
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let params = comms::signing::Params { created, key_id: "billing", nonce: "0123456789abcdef" };
        let base = comms::signing::signature_base(&message, &params);
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("h"));
        map.insert("content-digest", HeaderValue::from_static(comms::signing::EMPTY_CONTENT_DIGEST));
        map.insert(
            "signature-input",
            HeaderValue::from_str(&comms::signing::signature_input(&message, &params)).unwrap(),
        );
        map.insert(
            "signature",
            HeaderValue::from_str(&comms::signing::signature(&"secret".into(), &base)).unwrap(),
        );
        let verifier = Verifier::new().service("billing", "secret");
        let result = ready(verifier.verify(&Method::GET, &sent_uri, &map, b""));
        if signed_uri.query() == sent_uri.query() {
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            prop_assert!(result.is_err(), "`{signed}` signed, `{sent}` sent");
        }
    }

    #[test]
    fn the_verifier_refuses_header_soup(
        headers in proptest::collection::vec(
            (
                prop_oneof![
                    Just("signature-input"), Just("signature"), Just("content-digest"),
                    Just("host"), Just("x-service-id"), Just("x-timestamp"),
                    Just("x-signature"), Just("content-type"),
                ],
                proptest::collection::vec(any::<u8>(), 0..80),
            ),
            0..8,
        ),
        path in "/[a-z/%]{0,20}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let verifier = Verifier::new().service("billing", "secret").accept_legacy(true);
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        let uri: Uri = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let result = ready(verifier.verify(&Method::POST, &uri, &map, &body));
        prop_assert!(result.is_err(), "random headers never verify");
    }
}
