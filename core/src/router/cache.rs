//! The result cache (opt-in, [`CacheConfig`]): results of tools annotated read-only *and*
//! idempotent, kept for a time, keyed by node, tool and canonical arguments, so that a repeated
//! call is answered by the gateway and never reaches the node.

use alloc::borrow::ToOwned;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::{Duration, Instant};

/// Settings of the result cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a result is served after the call that made it.
    pub ttl: Duration,
    /// Results kept at once, at most (the oldest goes first).
    pub max_entries: usize,
    /// Bytes of results and keys kept at once, at most (the oldest goes first); a result
    /// larger than a quarter of it is not kept.
    pub max_bytes: usize,
}

impl CacheConfig {
    /// A cache with this time to live, 4,096 entries and 16 MiB at most.
    pub fn new(ttl: Duration) -> Self {
        CacheConfig {
            ttl,
            max_entries: 4096,
            max_bytes: 16 << 20,
        }
    }
}

type Key = (String, String, String);

struct Entry {
    result: String,
    expires: Instant,
    /// Its place in `order`.
    seq: u64,
}

/// The cache's tables; bounded by [`CacheConfig`].
pub(super) struct ResultCache {
    config: CacheConfig,
    entries: BTreeMap<Key, Entry>,
    /// Keys by insertion, which is expiry order (one TTL for all), with the entry's `seq`; a
    /// key removed or stored again stays here until it reaches the front or a compaction (it
    /// is skipped then: its entry is gone or has another `seq`).
    order: VecDeque<(u64, Key)>,
    next_seq: u64,
    bytes: usize,
}

fn cost(key: &Key, result: &str) -> usize {
    key.0.len() + key.1.len() + key.2.len() + result.len() + 64
}

impl ResultCache {
    pub(super) fn new(config: CacheConfig) -> Self {
        ResultCache {
            config,
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
        }
    }

    /// The key of a call: its arguments in canonical form ([`canonical`]).
    pub(super) fn key(node: &str, tool: &str, arguments: &str) -> Key {
        (node.to_owned(), tool.to_owned(), canonical(arguments))
    }

    /// A fresh result for `key`, if any (a stale one is dropped).
    pub(super) fn get(&mut self, key: &Key, now: Instant) -> Option<&str> {
        let fresh = self.entries.get(key)?.expires > now;
        if !fresh {
            self.remove(key);
            return None;
        }
        self.entries.get(key).map(|e| e.result.as_str())
    }

    pub(super) fn insert(&mut self, key: Key, result: &str, now: Instant) {
        let c = cost(&key, result);
        if c > self.config.max_bytes / 4 || self.config.max_entries == 0 {
            return;
        }
        self.remove(&key);
        self.purge(now);
        while !self.entries.is_empty()
            && (self.entries.len() >= self.config.max_entries
                || self.bytes + c > self.config.max_bytes)
        {
            self.pop_oldest();
        }
        let expires = now + self.config.ttl;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += c;
        self.order.push_back((seq, key.clone()));
        self.entries.insert(
            key,
            Entry {
                result: result.to_owned(),
                expires,
                seq,
            },
        );
        // A key stored again (a bypassing call) leaves its old place in `order` behind.
        self.compact();
    }

    /// Drops every result of `node` (it re-registered, withdrew tools or left).
    pub(super) fn drop_node(&mut self, node: &str) {
        let keys: Vec<Key> = self
            .entries
            .range::<Key, _>((node.to_owned(), String::new(), String::new())..)
            .take_while(|(k, _)| k.0 == node)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.remove(&k);
        }
        self.compact();
    }

    /// Results kept now.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= cost(key, &e.result);
        }
    }

    /// Drops the expired entries at the front (and the stale places before them).
    fn purge(&mut self, now: Instant) {
        while let Some((seq, k)) = self.order.front() {
            match self.entries.get(k) {
                Some(e) if e.seq == *seq && e.expires > now => break,
                _ => self.pop_oldest(),
            }
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((seq, k)) = self.order.pop_front()
            && self.entries.get(&k).is_some_and(|e| e.seq == seq)
        {
            self.remove(&k);
        }
    }

    /// Keeps `order` within twice the entries (keys removed early leave stale places).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }
}

/// `text` (strict JSON, as the gateway accepted it) with object members sorted by name and no
/// whitespace between tokens. Strings and numbers stay as written, so two spellings of one
/// value (`"\u0061"` and `"a"`, `1.0` and `1`) are two keys: a miss, never a wrong hit.
pub fn canonical(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut at = 0;
    value(text, b, &mut at, &mut out);
    out
}

fn skip_ws(b: &[u8], at: &mut usize) {
    while b
        .get(*at)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        *at += 1;
    }
}

/// The end (exclusive) of the string starting at `at` (its opening quote).
fn string_end(b: &[u8], mut at: usize) -> usize {
    at += 1;
    while at < b.len() {
        match b[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    b.len()
}

fn value(text: &str, b: &[u8], at: &mut usize, out: &mut String) {
    skip_ws(b, at);
    match b.get(*at) {
        Some(b'{') => {
            *at += 1;
            let mut members: Vec<(&str, String)> = Vec::new();
            loop {
                skip_ws(b, at);
                match b.get(*at) {
                    Some(b'"') => {
                        let end = string_end(b, *at);
                        let name = &text[*at..end];
                        *at = end;
                        skip_ws(b, at);
                        *at += 1; // ':'
                        let mut v = String::new();
                        value(text, b, at, &mut v);
                        members.push((name, v));
                    }
                    Some(b',') => *at += 1,
                    Some(b'}') => {
                        *at += 1;
                        break;
                    }
                    _ => break,
                }
            }
            members.sort_by(|x, y| x.0.cmp(y.0));
            out.push('{');
            for (i, (name, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push(':');
                out.push_str(v);
            }
            out.push('}');
        }
        Some(b'[') => {
            *at += 1;
            out.push('[');
            let mut first = true;
            loop {
                skip_ws(b, at);
                match b.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b']') => {
                        *at += 1;
                        break;
                    }
                    None => break,
                    Some(_) => {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        value(text, b, at, out);
                    }
                }
            }
            out.push(']');
        }
        Some(b'"') => {
            let end = string_end(b, *at);
            out.push_str(&text[*at..end]);
            *at = end;
        }
        Some(_) => {
            let start = *at;
            while b
                .get(*at)
                .is_some_and(|c| !matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                *at += 1;
            }
            out.push_str(&text[start..*at]);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_members_and_drops_whitespace() {
        assert_eq!(
            canonical(r#" { "b" : [ 1 , {"z":null, "a":"x y"} ], "a": -1.5e3 } "#),
            r#"{"a":-1.5e3,"b":[1,{"a":"x y","z":null}]}"#
        );
        assert_eq!(canonical(r#"{"s":"a\"}b"}"#), r#"{"s":"a\"}b"}"#);
        assert_eq!(canonical("[]"), "[]");
        assert_eq!(canonical("{}"), "{}");
        assert_ne!(canonical(r#"{"a":"\u0061"}"#), canonical(r#"{"a":"a"}"#));
    }

    #[test]
    fn entries_expire_are_bounded_and_drop_by_node() {
        let mut c = ResultCache::new(CacheConfig {
            ttl: Duration::from_secs(10),
            max_entries: 2,
            max_bytes: 1 << 20,
        });
        let t0 = Instant(0);
        let k = |n: &str, a: &str| ResultCache::key(n, "t", a);
        c.insert(k("a", "{}"), "1", t0);
        assert_eq!(c.get(&k("a", "{ }"), t0), Some("1"));
        assert_eq!(
            c.get(&k("a", "{}"), Instant(10_000)),
            None,
            "expired at the TTL"
        );
        c.insert(k("a", "{}"), "1", t0);
        c.insert(k("a", r#"{"x":1}"#), "2", t0);
        c.insert(k("b", "{}"), "3", t0);
        assert_eq!(c.len(), 2, "the oldest went");
        assert_eq!(c.get(&k("a", "{}"), t0), None);
        c.drop_node("a");
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&k("b", "{}"), t0), Some("3"));
        // A result over a quarter of the byte budget is not kept.
        let mut small = ResultCache::new(CacheConfig {
            ttl: Duration::from_secs(10),
            max_entries: 8,
            max_bytes: 400,
        });
        small.insert(k("a", "{}"), &"x".repeat(200), t0);
        assert_eq!(small.len(), 0);
        for i in 0..100 {
            small.insert(k("a", &alloc::format!("{{\"i\":{i}}}")), "1", t0);
        }
        assert!(small.bytes <= 400 && small.len() <= 8);
        // One key stored again and again (calls that bypass the cache) keeps `order` bounded.
        for _ in 0..1000 {
            c.insert(k("b", "{}"), "4", t0);
        }
        assert!(c.order.len() <= 2 * c.len() + 16, "{}", c.order.len());
    }
}
