//! Serde values in the `application/x-www-form-urlencoded` shape: the fields of a struct as
//! query pairs (`#[query(flatten)]`, [`Call::query_flatten`](crate::Call::query_flatten)) or as
//! a form body (`#[form]`, [`Call::form`](crate::Call::form)).
//!
//! `serde_html_form` decides which pairs a value makes: one per field, none for a `None`, one
//! per item of a `Vec` (a repeated key), keys as `#[serde(rename)]` says. A form body is its
//! output as it is, in the standard encoding (a space as `+`). Query pairs are re-encoded by
//! [`path::push_query`], the one encoder of query components, so a flattened value is escaped
//! exactly like a plain `#[query]` value and the query the signature covers is the query sent.

use serde::Serialize;

use crate::{Error, path};

/// The pairs `value` serializes to, decoded, in order.
fn pairs<T: Serialize + ?Sized>(value: &T) -> Result<Vec<(String, String)>, Error> {
    let encoded = serde_html_form::to_string(value).map_err(|e| {
        Error::encode(format!(
            "a flattened query value does not serialize to pairs: {e}"
        ))
    })?;
    Ok(form_urlencoded::parse(encoded.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// The pairs of an encoded query string, still encoded, in order: empty pairs skipped, and a
/// pair without `=` a key with an empty value. The client's duplicate-key check and the
/// server's reading of a query share this one rule.
pub(crate) fn encoded_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The keys of an encoded query string, still encoded.
pub(crate) fn encoded_keys(query: &str) -> impl Iterator<Item = &str> {
    encoded_pairs(query).map(|(key, _)| key)
}

/// Appends the pairs of `value` to `query`, each encoded like a plain query pair, and returns
/// the keys it added (encoded, each once). A key `query` holds already is refused with
/// [`Error::Encode`], and nothing is appended.
pub(crate) fn push_flattened<T: Serialize + ?Sized>(
    query: &mut String,
    value: &T,
) -> Result<Vec<String>, Error> {
    let mut added = String::new();
    let mut keys: Vec<String> = Vec::new();
    for (key, value) in pairs(value)? {
        path::push_query(&mut added, &key, &value);
    }
    for key in encoded_keys(&added) {
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }
    if let Some(key) = keys.iter().find(|k| encoded_keys(query).any(|q| q == *k)) {
        return Err(duplicate(key));
    }
    if !added.is_empty() {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&added);
    }
    Ok(keys)
}

/// The error for a query key set twice, by a flattened value and by another pair.
pub(crate) fn duplicate(encoded_key: &str) -> Error {
    let key = percent_encoding::percent_decode_str(encoded_key).decode_utf8_lossy();
    Error::encode(format!(
        "query key `{key}` is set by a flattened value and by another query pair; \
         each key may come from one of them"
    ))
}

/// `value` as an `application/x-www-form-urlencoded` body.
pub(crate) fn body<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_html_form::to_string(value)
        .map_err(|e| Error::encode(format!("the form body does not serialize: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Filter<'a> {
        #[serde(rename = "q")]
        text: &'a str,
        min: Option<u32>,
        max: Option<u32>,
        tag: Vec<&'a str>,
    }

    #[test]
    fn fields_become_pairs_escaped_like_plain_query_values() {
        let filter = Filter {
            text: "a b+c*~é&=",
            min: None,
            max: Some(9),
            tag: vec!["x", "y z"],
        };
        let mut query = String::from("page=1");
        let keys = push_flattened(&mut query, &filter).unwrap();
        assert_eq!(
            query,
            "page=1&q=a%20b%2Bc%2A~%C3%A9%26%3D&max=9&tag=x&tag=y%20z"
        );
        assert_eq!(keys, ["q", "max", "tag"]);
        let mut plain = String::new();
        path::push_query(&mut plain, "q", &filter.text);
        assert!(query.contains(&plain), "the same encoder as `#[query]`");
    }

    #[test]
    fn a_key_set_twice_is_refused_and_nothing_is_added() {
        let filter = Filter {
            text: "a",
            min: Some(1),
            max: None,
            tag: vec![],
        };
        let mut query = String::from("min=2");
        let err = push_flattened(&mut query, &filter).unwrap_err();
        assert!(matches!(err, Error::Encode { .. }), "{err}");
        assert!(err.to_string().contains("`min`"), "{err}");
        assert_eq!(query, "min=2");
        // A key the value leaves out (`None`, an empty `Vec`) is no conflict.
        let mut query = String::from("max=2&tag=t");
        push_flattened(&mut query, &filter).unwrap();
        assert_eq!(query, "max=2&tag=t&q=a&min=1");
    }

    #[test]
    fn values_that_are_not_pairs_are_encode_errors() {
        assert!(matches!(
            push_flattened(&mut String::new(), &"text"),
            Err(Error::Encode { .. })
        ));
        #[derive(Serialize)]
        struct Nested {
            inner: Vec<Vec<u8>>,
        }
        let nested = Nested {
            inner: vec![vec![1]],
        };
        assert!(push_flattened(&mut String::new(), &nested).is_err());
        assert!(matches!(body(&nested), Err(Error::Encode { .. })));
    }

    #[test]
    fn a_form_body_is_the_standard_encoding() {
        let filter = Filter {
            text: "a b&c",
            min: Some(1),
            max: None,
            tag: vec!["x", "y"],
        };
        assert_eq!(body(&filter).unwrap(), "q=a+b%26c&min=1&tag=x&tag=y");
    }
}
