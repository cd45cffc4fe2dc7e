//! "did you mean …?" hints.

/// ` ; did you mean `x`?`-style suffix naming the closest candidate, or nothing.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> String {
    hint(closest(word, candidates))
}

/// ` (did you mean `x`?)` for a candidate `x` already found, or nothing.
pub(crate) fn hint(meant: Option<&str>) -> String {
    meant
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate within a third of the word's length in edits, if any; else the one with the
/// fewest `_`-separated parts among those that have the word as one of them (`service` for
/// `service_id`, `timeout` for `timeout_ms`).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let near = candidates
        .clone()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    near.or_else(|| {
        candidates
            .filter(|c| c.contains('_') && c.split('_').any(|part| part == word))
            .min_by_key(|c| c.split('_').count())
    })
}

/// Edit distance over chars, a swap of two neighbours counting as one edit (`qurey` is one
/// from `query`): the optimal string alignment distance.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: the distance between the first i chars of `a` and the first j of `b`.
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_near_misses_only() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("qurey", "query"), 1, "a swap is one edit");
        assert_eq!(
            closest("qurey", ["query", "body"].into_iter()),
            Some("query")
        );
        assert_eq!(closest("idd", ["id", "name"].into_iter()), Some("id"));
        assert_eq!(
            closest("base_ulr", ["base_url", "signing"].into_iter()),
            Some("base_url")
        );
        assert_eq!(closest("zzz", ["id", "name"].into_iter()), None);
        let keys = ["base_url", "service_id", "secret_env", "base_url_env"];
        assert_eq!(closest("service", keys.into_iter()), Some("service_id"));
        assert_eq!(closest("url", keys.into_iter()), Some("base_url"));
        assert_eq!(
            closest("timeout", ["timeout_ms"].into_iter()),
            Some("timeout_ms")
        );
        assert_eq!(closest("ms", ["id", "name"].into_iter()), None);
    }
}
