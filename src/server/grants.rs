//! Channel names, patterns and grants: which channels a token lets its
//! holder read, and how an endpoint's wildcard is narrowed to what the user
//! may see.
//!
//! A grant or subscription is either a channel name (`user:u1`,
//! `msp:m1/client:c1`) or a prefix pattern ending in `*` (`msp:m1/*`,
//! `department:*`, `*`).

/// Longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 200;

/// Whether `s` is a well-formed channel name or pattern: non-empty, at most
/// [`MAX_CHANNEL_LEN`] bytes, printable ASCII without spaces, `*` only as the
/// last character.
pub fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CHANNEL_LEN
        && s.bytes().all(|b| b.is_ascii_graphic())
        && s.find('*').is_none_or(|i| i == s.len() - 1)
}

pub fn is_pattern(s: &str) -> bool {
    s.ends_with('*')
}

/// Whether pattern-or-name `grant` covers channel-or-pattern `want`.
pub fn covers(grant: &str, want: &str) -> bool {
    match grant.strip_suffix('*') {
        Some(prefix) => match want.strip_suffix('*') {
            // A pattern is covered by a grant whose prefix it extends.
            Some(wp) => wp.starts_with(prefix),
            None => want.starts_with(prefix),
        },
        None => grant == want,
    }
}

/// Whether any of `grants` covers `want`.
pub fn allowed(grants: &[String], want: &str) -> bool {
    grants.iter().any(|g| covers(g, want))
}

/// What a user may see of an endpoint's wildcard `want`: `want` itself when
/// a grant covers it, else every grant that falls inside it.
pub fn narrow(grants: &[String], want: &str) -> Vec<String> {
    if allowed(grants, want) {
        return vec![want.to_owned()];
    }
    let mut out: Vec<String> = grants.iter().filter(|g| covers(want, g)).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// Whether a concrete `channel` matches subscription `sub`.
pub fn matches(sub: &str, channel: &str) -> bool {
    covers(sub, channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_cover_names_and_patterns() {
        let msp = g(&["msp:m1/*"]);
        assert!(allowed(&msp, "msp:m1/client:c1"));
        assert!(allowed(&msp, "msp:m1/client:*"));
        assert!(!allowed(&msp, "msp:m2/client:c1"));
        assert!(!allowed(&msp, "msp:*"));
        let client = g(&["msp:m1/client:c1"]);
        assert!(allowed(&client, "msp:m1/client:c1"));
        assert!(!allowed(&client, "msp:m1/client:c2"));
        assert!(allowed(&g(&["*"]), "anything"));
    }

    #[test]
    fn narrowing_endpoint_wildcards() {
        assert_eq!(narrow(&g(&["msp:m1/*"]), "msp:*"), ["msp:m1/*"]);
        assert_eq!(
            narrow(&g(&["department:*"]), "department:*"),
            ["department:*"]
        );
        assert_eq!(
            narrow(&g(&["department:eng", "user:u1"]), "department:*"),
            ["department:eng"]
        );
        assert!(narrow(&g(&["user:u1"]), "department:*").is_empty());
    }

    #[test]
    fn names_are_validated() {
        assert!(valid("msp:m1/client:c1"));
        assert!(valid("department:*"));
        assert!(!valid(""));
        assert!(!valid("a b"));
        assert!(!valid("a*b"));
        assert!(!valid(&"x".repeat(201)));
        assert!(!valid("é"));
    }
}
