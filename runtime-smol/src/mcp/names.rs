//! MCP names for a node's tools: `node__tool` (or, with bare names, the tool's own name where
//! one node offers it), unique within one listing.

use std::collections::HashSet;

use super::SEPARATOR;

/// MCP's limit on a tool name.
const MAX_NAME: usize = 128;

/// MCP names for `(node, tool)` pairs sorted by (node, tool): `node__tool`, with characters
/// outside MCP's alphabet replaced by `_`. A name already taken, by an earlier pair or as any
/// pair's plain name, gets the first free suffix `-2`, `-3`, …
#[cfg(test)]
pub(super) fn qualified_names(pairs: &[(&str, &str)]) -> Vec<String> {
    names(pairs, false)
}

/// `qualified_names` (a test helper), or with `bare` a tool's own name where no other node in `pairs` offers
/// a tool of that name (and it is not [`READ_RESULT_TOOL`](super::READ_RESULT_TOOL)): a
/// one-node setup lists `read_sensor`, two nodes offering it `a__read_sensor` and
/// `b__read_sensor`.
pub(super) fn names(pairs: &[(&str, &str)], bare: bool) -> Vec<String> {
    let mut offered: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (_, tool) in pairs {
        *offered.entry(tool).or_default() += 1;
    }
    let plain: Vec<String> = pairs
        .iter()
        .map(|(node, tool)| {
            let unique = bare && offered[tool] == 1 && *tool != super::READ_RESULT_TOOL;
            let full = if unique {
                (*tool).to_owned()
            } else {
                format!("{node}{SEPARATOR}{tool}")
            };
            let mut s: String = full
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

    #[test]
    fn bare_names_where_one_node_offers_the_tool() {
        let pairs = [
            ("a", "echo"),
            ("a", "read"),
            ("b", "echo"),
            ("b", "toolwire_read_result"),
            ("c", "a__echo"),
        ];
        assert_eq!(
            names(&pairs, true),
            [
                "a__echo",
                "read",
                "b__echo",
                "b__toolwire_read_result",
                "a__echo-2"
            ],
            "shared names qualified, the read tool's name never bare, collisions suffixed"
        );
        assert_eq!(names(&pairs, false), qualified_names(&pairs));
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
