//! The signature base, parameters and digests against fixed values.

use super::*;

#[test]
fn legacy_string_decodes_the_path() {
    assert_eq!(
        legacy_string_to_sign("get", "/files/a%2Fb/r%C3%A9sum%C3%A9", 7),
        "GET|/files/a/b/résumé|7".as_bytes()
    );
}

#[test]
fn digest_of_empty_body() {
    assert_eq!(content_digest(b""), EMPTY_CONTENT_DIGEST);
    let mut computed = String::from("sha-256=:");
    BASE64.encode_string(Sha256::digest(b""), &mut computed);
    computed.push(':');
    assert_eq!(computed, EMPTY_CONTENT_DIGEST);
}

#[test]
fn secret_debug_is_redacted() {
    let secret = Secret::from("hunter2");
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

#[test]
fn signing_scheme_parses() {
    assert_eq!("rfc9421".parse::<Signing>(), Ok(Signing::Rfc9421));
    assert_eq!("legacy".parse::<Signing>(), Ok(Signing::Legacy));
    let unknown = "v2".parse::<Signing>().unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "unknown signing scheme `v2`, expected `rfc9421` or `legacy`"
    );
    // An error type, so that `?` takes it into `Box<dyn Error>` or an `anyhow::Error`.
    let _: &dyn std::error::Error = &unknown;
    assert!("RFC9421".parse::<Signing>().is_err());
}

#[test]
fn key_ids() {
    assert!(is_valid_key_id("billing-2026-12"));
    for bad in ["", "a b", "a\"b", "a\\b", "é", &"k".repeat(257)] {
        assert!(!is_valid_key_id(bad), "{bad:?}");
    }
}

#[test]
fn the_base_ends_with_the_signature_input_member() {
    let fields = [("content-digest", EMPTY_CONTENT_DIGEST), ("x-a", "  v ")];
    let message = Message {
        method: "GET",
        authority: "h:1",
        path: "/p",
        query: "",
        fields: &fields,
    };
    let params = Params {
        created: 5,
        key_id: "k",
        nonce: "n",
    };
    let base = signature_base(&message, &params);
    let input = signature_input(&message, &params);
    let member = input.strip_prefix("comms=").unwrap();
    assert!(base.ends_with(&format!("\"@signature-params\": {member}")));
    assert!(base.contains("\"@query\": ?\n\"content-digest\""));
    assert!(base.contains("\"x-a\": v\n"), "values are trimmed: {base}");
}

#[test]
fn a_usual_inner_list_is_what_inner_list_writes() {
    let mut headers = http::HeaderMap::new();
    let list =
        |headers: &http::HeaderMap| inner_list(covered_fields(headers).map(HeaderName::as_str));
    assert_eq!(
        usual_inner_list(&headers),
        Some(r#"("@method" "@authority" "@path" "@query" "content-digest")"#)
    );
    // Set in another order than the list's, which is `COVERED_WHEN_PRESENT`'s.
    for name in [
        TRACEPARENT,
        COMMS_DEADLINE_MS,
        http::header::CONTENT_TYPE,
        CONTENT_DIGEST,
    ] {
        headers.insert(name, http::HeaderValue::from_static("v"));
        assert_eq!(usual_inner_list(&headers), Some(list(&headers).as_str()));
    }
    assert_eq!(
        usual_inner_list(&headers),
        Some(
            r#"("@method" "@authority" "@path" "@query" "content-digest" "content-type" "comms-deadline-ms" "traceparent")"#
        )
    );
    // A header of the call's own is listed as it is set: no list is written ahead for it.
    headers.insert("x-tenant", http::HeaderValue::from_static("acme"));
    assert_eq!(usual_inner_list(&headers), None);
}
