//! A header hook: headers an async function supplies afresh for every attempt, before the
//! attempt is signed (see [`ExecutorBuilder::header_hook`](crate::ExecutorBuilder::header_hook)).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;

use crate::Error;

/// What a header hook returns for one attempt: the headers to set on it.
pub(crate) type HookFuture =
    Pin<Box<dyn Future<Output = Result<HeaderMap, Error>> + Send + 'static>>;

/// A registered hook.
pub(crate) type Hook = Arc<dyn Fn() -> HookFuture + Send + Sync>;

/// Wraps a user's function as a [`Hook`].
pub(crate) fn hook<F, Fut>(f: F) -> Hook
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HeaderMap, Error>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()) as HookFuture)
}

/// The call's headers with the hook's laid over them: a name the hook sets replaces the call's
/// values. A name comms writes itself is refused, and so is a `Content-Type` over a form or
/// multipart body's (`fixed_type`), whose type is its own (a multipart one names its boundary).
pub(crate) fn merge(
    call: &HeaderMap,
    hooked: HeaderMap,
    fixed_type: bool,
) -> Result<HeaderMap, Error> {
    if fixed_type && hooked.contains_key(http::header::CONTENT_TYPE) {
        return Err(Error::config(
            "header_hook",
            "the hook set `content-type` on a call whose form or multipart body has its own",
        ));
    }
    if let Some(name) = hooked
        .keys()
        .find(|name| crate::signing::is_call_owned(name))
    {
        return Err(Error::config(
            "header_hook",
            format!(
                "the hook set `{name}`, which comms sets itself, belongs to one call or is \
                 hop-by-hop"
            ),
        ));
    }
    if let Some((name, why)) = hooked
        .iter()
        .find_map(|(name, value)| Some((name, crate::header_map::unsigned(value.as_bytes())?)))
    {
        return Err(Error::config(
            "header_hook",
            format!("the value the hook set for `{name}` {why}"),
        ));
    }
    Ok(crate::header_map::laid_over(call, &hooked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hooks_value_with_white_space_at_either_end_or_outside_ascii_is_refused() {
        for padded in [&b" token"[..], b"token\t", "Zo\u{eb}".as_bytes()] {
            let mut hooked = HeaderMap::new();
            hooked.insert("x-tenant", http::HeaderValue::from_bytes(padded).unwrap());
            let err = merge(&HeaderMap::new(), hooked, false).unwrap_err();
            assert!(
                matches!(&err, Error::Config { .. }) && err.to_string().contains("x-tenant"),
                "{err}"
            );
        }
        let mut hooked = HeaderMap::new();
        hooked.insert("x-tenant", "a b".parse().unwrap());
        assert!(merge(&HeaderMap::new(), hooked, false).is_ok());
    }

    #[test]
    fn the_hooks_headers_replace_the_calls_and_reserved_names_are_refused() {
        let mut call = HeaderMap::new();
        call.insert("authorization", "old".parse().unwrap());
        call.insert("x-keep", "1".parse().unwrap());
        let mut hooked = HeaderMap::new();
        hooked.insert("authorization", "new".parse().unwrap());
        hooked.append("x-many", "a".parse().unwrap());
        hooked.append("x-many", "b".parse().unwrap());
        let merged = merge(&call, hooked, false).unwrap();
        assert_eq!(merged["authorization"], "new");
        assert_eq!(merged["x-keep"], "1");
        assert_eq!(merged.get_all("x-many").iter().count(), 2);

        let mut bad = HeaderMap::new();
        bad.insert("signature", "x".parse().unwrap());
        let err = merge(&call, bad, false).unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "header_hook"),
            "{err}"
        );

        // A `Content-Type` replaces a JSON body's, not a form's or multipart one's.
        let mut typed = HeaderMap::new();
        typed.insert(
            "content-type",
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(merge(&call, typed.clone(), false).is_ok());
        let err = merge(&call, typed, true).unwrap_err();
        assert!(
            matches!(&err, Error::Config { key, .. } if key == "header_hook"),
            "{err}"
        );
    }
}
