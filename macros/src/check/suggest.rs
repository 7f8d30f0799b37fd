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

/// The closest candidate, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I: IntoIterator<Item = &'a str>>(name: &str, candidates: I) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
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
        assert_eq!(did_you_mean("Clasify", ["Classify", "Done"]), Some("Classify"));
        assert_eq!(did_you_mean("intial", ["initial", "terminal"]), Some("initial"));
        assert_eq!(did_you_mean("Frobnicate", ["Classify", "Done"]), None);
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
