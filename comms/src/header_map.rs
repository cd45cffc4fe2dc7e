//! Laying one header map over another: the rule a call's headers, a view's headers, a header
//! hook's and a served answer's all follow.

use http::{HeaderMap, HeaderName};

/// Lays `over` onto `out`: each name in `over` replaces `out`'s values of that name with all of
/// its own; names only in `out` stay.
pub(crate) fn lay_over(out: &mut HeaderMap, over: &HeaderMap) {
    let mut previous: Option<&HeaderName> = None;
    for (name, value) in over {
        if previous == Some(name) {
            out.append(name.clone(), value.clone());
        } else {
            out.insert(name.clone(), value.clone());
        }
        previous = Some(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_laid_over_replaces_all_its_values_and_keeps_its_own() {
        let mut out = HeaderMap::new();
        out.append("x-a", "1".parse().unwrap());
        out.append("x-a", "2".parse().unwrap());
        out.insert("x-keep", "k".parse().unwrap());
        let mut over = HeaderMap::new();
        over.append("x-a", "3".parse().unwrap());
        over.append("x-a", "4".parse().unwrap());
        lay_over(&mut out, &over);
        let a: Vec<_> = out.get_all("x-a").iter().collect();
        assert_eq!(a, ["3", "4"]);
        assert_eq!(out["x-keep"], "k");
    }
}
