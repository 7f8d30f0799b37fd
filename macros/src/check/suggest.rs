//! "Did you mean …?" by edit distance, for targets and attribute names.

/// Levenshtein distance between `a` and `b`.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate, if it is close enough to be a likely typo: a
/// small edit distance (`Clasify` → `Classify`), or else a part of the
/// name written alone (`Refund` → `IssueRefund`, `steps` → `max_steps`).
pub fn did_you_mean<'a, I: IntoIterator<Item = &'a str>>(
    name: &str,
    candidates: I,
) -> Option<&'a str> {
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    let limit = (name.chars().count() / 3).max(1);
    let close = candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    if close.is_some() || name.chars().count() < 3 {
        return close;
    }
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| c.to_lowercase().contains(&lower))
        .min_by_key(|c| c.len())
}

/// "expected one of `a`, `b`; did you mean `x`?"
pub fn expected_one_of(name: &str, candidates: &[&str]) -> String {
    let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    let mut msg = format!("expected one of {}", list.join(", "));
    if let Some(s) = did_you_mean(name, candidates.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_but_not_strangers() {
        assert_eq!(
            did_you_mean("Clasify", ["Classify", "Done"]),
            Some("Classify")
        );
        assert_eq!(
            did_you_mean("intial", ["initial", "terminal"]),
            Some("initial")
        );
        assert_eq!(did_you_mean("Frobnicate", ["Classify", "Done"]), None);
        assert_eq!(
            did_you_mean("Refund", ["IssueRefund", "RefundAll", "Done"]),
            Some("RefundAll")
        );
        assert_eq!(
            did_you_mean("steps", ["context", "max_steps"]),
            Some("max_steps")
        );
        // Too short to be a telling part of a name.
        assert_eq!(did_you_mean("to", ["Toast"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn lists_options() {
        assert_eq!(
            expected_one_of("max_step", &["context", "max_steps"]),
            "expected one of `context`, `max_steps`; did you mean `max_steps`?"
        );
    }
}
