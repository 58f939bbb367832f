//! MCP names for a node's tools: `node__tool`, unique within one listing.

use std::collections::HashSet;

use super::SEPARATOR;

/// MCP's limit on a tool name.
const MAX_NAME: usize = 128;

/// MCP names for `(node, tool)` pairs sorted by (node, tool): `node__tool`, with characters
/// outside MCP's alphabet replaced by `_`. A name already taken, by an earlier pair or as any
/// pair's plain name, gets the first free suffix `-2`, `-3`, …
pub(super) fn qualified_names(pairs: &[(&str, &str)]) -> Vec<String> {
    let plain: Vec<String> = pairs
        .iter()
        .map(|(node, tool)| {
            let mut s: String = format!("{node}{SEPARATOR}{tool}")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            // Leave room for a suffix; only reachable past the protocol's own limits.
            s.truncate(MAX_NAME - 8);
            s
        })
        .collect();
    let taken: HashSet<&str> = plain.iter().map(String::as_str).collect();
    let mut owned: HashSet<&str> = HashSet::new();
    let mut extra: Vec<String> = vec![];
    let mut out = Vec::with_capacity(pairs.len());
    for p in &plain {
        if owned.insert(p.as_str()) {
            out.push(p.clone());
            continue;
        }
        let mut n = 2u32;
        let name = loop {
            let candidate = format!("{p}-{n}");
            if !taken.contains(candidate.as_str()) && !extra.contains(&candidate) {
                break candidate;
            }
            n += 1;
        };
        extra.push(name.clone());
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_node_tool_and_collisions_get_suffixes() {
        let pairs = [
            ("a", "_b"),
            ("a", "x"),
            ("a_", "b"),
            ("a_", "b-2"),
            ("b", "y"),
        ];
        assert_eq!(
            qualified_names(&pairs),
            ["a___b", "a__x", "a___b-3", "a___b-2", "b__y"],
            "the first pair keeps the name; a suffix never takes another pair's plain name"
        );
        let long = "n".repeat(200);
        let names = qualified_names(&[(&long, "t"), (&long, "u")]);
        assert!(names.iter().all(|n| n.len() <= MAX_NAME), "{names:?}");
        assert_ne!(names[0], names[1]);
        assert_eq!(qualified_names(&[("n", "t o")]), ["n__t_o"]);
    }

    /// The bridge's own tool can never be a node's: every name given here holds the
    /// separator (node ids and tool names are never empty), and it does not.
    #[test]
    fn no_node_tool_is_named_like_the_read_tool() {
        use crate::mcp::READ_RESULT_TOOL;
        assert!(!READ_RESULT_TOOL.contains(SEPARATOR));
        let pairs = [
            ("toolwire", "read_result"),
            ("toolwire_read", "result"),
            ("toolwire_read_result", "x"),
            ("x", "toolwire_read_result"),
            ("a", "_b"),
            ("a_", "b"),
        ];
        for name in qualified_names(&pairs) {
            assert!(name.contains(SEPARATOR), "{name}");
            assert_ne!(name, READ_RESULT_TOOL);
        }
    }
}
