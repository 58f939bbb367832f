//! Held results (the result budget): a call that sets `max_result_bytes` and gets a longer
//! result receives its first page, and the whole JSON text stays here, bounded in time, count
//! and bytes, for `results.read` to page through.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;

use super::ConnId;
use super::types::Failure;
use crate::{Duration, ErrorCode, Instant};

/// Settings of the held results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldConfig {
    /// How long a held result can be read after the call that made it.
    pub ttl: Duration,
    /// Bytes held at once, at most (the oldest goes first); a result longer than a quarter of
    /// it is not held (its first page is still returned, and reading on gives `-32015`).
    pub max_bytes: usize,
    /// Results one controller connection holds at once, at most (its oldest goes first).
    pub max_per_holder: usize,
    /// Results the local callers (REST, the Rust API) hold at once, together, at most (the
    /// oldest goes first): they are one pool, read by handle under the reader's ACL.
    pub max_local: usize,
}

impl Default for HeldConfig {
    /// Five minutes, 64 MiB, 32 results per controller, 1,024 for the local callers.
    fn default() -> Self {
        HeldConfig {
            ttl: Duration::from_secs(300),
            max_bytes: 64 << 20,
            max_per_holder: 32,
            max_local: 1024,
        }
    }
}

/// Who may read a held result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Holder {
    /// The controller connection that made the call (a handle it closed is not current).
    Conn(ConnId),
    /// A local caller ([`super::Router::call_with`]): any local caller whose ACL permits the
    /// tool.
    Local,
}

struct Rec {
    holder: Holder,
    node: String,
    tool: String,
    text: String,
    /// The call's `max_result_bytes`: the default page length.
    page: u32,
    expires: Instant,
}

/// A page of a held result.
pub(super) struct Page<'a> {
    pub(super) text: &'a str,
    pub(super) total: u32,
    pub(super) next: Option<u32>,
}

/// The held results, bounded by [`HeldConfig`].
pub(super) struct HeldResults {
    config: HeldConfig,
    /// By handle number; a handle is `r` and the number.
    recs: BTreeMap<u64, Rec>,
    /// Handle numbers in insertion order, which is expiry order (one TTL for all); a number
    /// whose result went early stays until it reaches the front.
    order: VecDeque<u64>,
    /// Handle numbers by holder.
    by_holder: BTreeSet<(Holder, u64)>,
    next: u64,
    bytes: usize,
}

fn cost(r: &Rec) -> usize {
    r.text.len() + r.node.len() + r.tool.len() + 96
}

/// The end of a page of `text` from `offset` of at most `len` bytes: cut back to a character
/// boundary, but at least one character long, so that paging always moves on.
pub(super) fn page_end(text: &str, offset: usize, len: usize) -> usize {
    let mut end = offset.saturating_add(len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end == offset && offset < text.len() {
        end += 1;
        while !text.is_char_boundary(end) {
            end += 1;
        }
    }
    end
}

impl HeldResults {
    pub(super) fn new(config: HeldConfig) -> Self {
        HeldResults {
            config,
            recs: BTreeMap::new(),
            order: VecDeque::new(),
            by_holder: BTreeSet::new(),
            next: 1,
            bytes: 0,
        }
    }

    /// Results held now, and their bytes.
    pub(super) fn usage(&self) -> (usize, usize) {
        (self.recs.len(), self.bytes)
    }

    fn remove(&mut self, n: u64) {
        if let Some(r) = self.recs.remove(&n) {
            self.bytes -= cost(&r);
            self.by_holder.remove(&(r.holder, n));
        }
    }

    /// The handle numbers `holder` holds, oldest first.
    fn of(&self, holder: Holder) -> impl Iterator<Item = u64> + '_ {
        self.by_holder
            .range((holder, 0)..=(holder, u64::MAX))
            .map(|&(_, n)| n)
    }

    /// Drops what expired by `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(&n) = self.order.front() {
            match self.recs.get(&n) {
                Some(r) if r.expires > now => break,
                _ => {
                    self.order.pop_front();
                    self.remove(n);
                }
            }
        }
    }

    /// Holds `text` for `holder`; the handle to give out. A text too long to hold still gets
    /// a handle (reading it gives `-32015`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        holder: Holder,
        node: &str,
        tool: &str,
        text: &str,
        page: u32,
        now: Instant,
    ) -> String {
        let n = self.next;
        self.next += 1;
        let handle = format!("r{n}");
        self.expire(now);
        let rec = Rec {
            holder,
            node: node.into(),
            tool: tool.into(),
            text: text.into(),
            page,
            expires: now + self.config.ttl,
        };
        let c = cost(&rec);
        if c > self.config.max_bytes / 4 {
            return handle;
        }
        // The holder's oldest go first, then anybody's oldest.
        let limit = match holder {
            Holder::Conn(_) => self.config.max_per_holder,
            Holder::Local => self.config.max_local,
        };
        // Counted only up to the limit: a holder's results are few, or bounded by it.
        while self.of(holder).take(limit).count() >= limit.max(1) {
            let Some(old) = self.of(holder).next() else {
                break;
            };
            self.remove(old);
        }
        while self.bytes + c > self.config.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.remove(old);
        }
        // Numbers removed early linger in `order`; keep it within twice the results.
        if self.order.len() > 2 * self.recs.len() + 16 {
            let recs = &self.recs;
            self.order.retain(|n| recs.contains_key(n));
        }
        self.bytes += c;
        self.by_holder.insert((holder, n));
        self.recs.insert(n, rec);
        self.order.push_back(n);
        handle
    }

    /// A page of the result `handle` names, if `may_read` accepts its holder, node and tool.
    pub(super) fn read(
        &mut self,
        handle: &str,
        offset: u32,
        length: Option<u32>,
        now: Instant,
        may_read: impl FnOnce(Holder, &str, &str) -> bool,
    ) -> Result<Page<'_>, Failure> {
        self.expire(now);
        let gone = || {
            Failure::new(
                ErrorCode::ResultGone,
                format!(
                    "no held result `{handle}` for this caller (never held, expired, or dropped \
                     to make room); call the tool again"
                ),
            )
        };
        let n: u64 = handle
            .strip_prefix('r')
            .and_then(|d| d.parse().ok())
            .ok_or_else(gone)?;
        let rec = self.recs.get(&n).ok_or_else(gone)?;
        if !may_read(rec.holder, &rec.node, &rec.tool) {
            return Err(gone());
        }
        let text = rec.text.as_str();
        let offset = offset as usize;
        if offset > text.len() || !text.is_char_boundary(offset) {
            return Err(Failure::new(
                ErrorCode::InvalidParams,
                format!(
                    "offset {offset} is not the start of a page: use 0 or a next_offset \
                     (the text has {} bytes)",
                    text.len()
                ),
            ));
        }
        let len = match length.unwrap_or(rec.page) {
            0 => {
                return Err(Failure::new(
                    ErrorCode::InvalidParams,
                    "length must be at least 1",
                ));
            }
            l => l as usize,
        };
        let end = page_end(text, offset, len);
        Ok(Page {
            text: &text[offset..end],
            total: text.len() as u32,
            next: (end < text.len()).then_some(end as u32),
        })
    }

    /// Drops what a closed controller held.
    pub(super) fn drop_holder(&mut self, conn: ConnId) {
        let mine: alloc::vec::Vec<u64> = self.of(Holder::Conn(conn)).collect();
        for n in mine {
            self.remove(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Instant {
        Instant(s * 1000)
    }

    #[test]
    fn pages_cut_at_character_boundaries_and_always_move_on() {
        let t = "aé€😀b";
        assert_eq!(page_end(t, 0, 2), 1); // `é` would be split
        assert_eq!(page_end(t, 1, 2), 3);
        assert_eq!(page_end(t, 3, 1), 6); // shorter than `€`: one whole character
        assert_eq!(page_end(t, 6, 100), t.len());
        assert_eq!(page_end(t, t.len(), 5), t.len());
    }

    #[test]
    fn read_pages_through_and_refuses_a_bad_offset() {
        let mut h = HeldResults::new(HeldConfig::default());
        let handle = h.hold(Holder::Local, "n", "t", "0123456789", 4, at(0));
        let mut seen = String::new();
        let mut offset = 0;
        loop {
            let p = h
                .read(&handle, offset, None, at(1), |_, _, _| true)
                .unwrap();
            assert_eq!(p.total, 10);
            seen.push_str(p.text);
            match p.next {
                Some(n) => offset = n,
                None => break,
            }
        }
        assert_eq!(seen, "0123456789");
        assert!(h.read(&handle, 11, None, at(1), |_, _, _| true).is_err());
        let e = h
            .read(&handle, 0, Some(0), at(1), |_, _, _| true)
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::InvalidParams.code());
        let e = h.read("r99", 0, None, at(1), |_, _, _| true).err().unwrap();
        assert_eq!(e.code, ErrorCode::ResultGone.code());
        let e = h
            .read(&handle, 0, None, at(1), |_, _, _| false)
            .err()
            .unwrap();
        assert_eq!(e.code, ErrorCode::ResultGone.code());
    }

    #[test]
    fn bounded_in_time_count_and_bytes() {
        let cfg = HeldConfig {
            ttl: Duration::from_secs(10),
            max_bytes: 4000,
            max_per_holder: 5,
            max_local: 2,
        };
        let mut h = HeldResults::new(cfg);
        let text = "x".repeat(500);
        let a = h.hold(Holder::Local, "n", "t", &text, 16, at(0));
        assert!(h.read(&a, 0, None, at(9), |_, _, _| true).is_ok());
        assert!(
            h.read(&a, 0, None, at(10), |_, _, _| true).is_err(),
            "expired"
        );
        assert_eq!(h.usage().0, 0);
        // Per holder: the third drops the first.
        let hs: alloc::vec::Vec<String> = (0..3)
            .map(|i| h.hold(Holder::Local, "n", "t", &text, 16, at(20 + i)))
            .collect();
        assert!(h.read(&hs[0], 0, None, at(23), |_, _, _| true).is_err());
        assert!(h.read(&hs[2], 0, None, at(23), |_, _, _| true).is_ok());
        // Bytes: over a quarter of max_bytes is not held at all.
        let big = "y".repeat(1100);
        let b = h.hold(Holder::Local, "n", "t", &big, 16, at(24));
        assert!(h.read(&b, 0, None, at(24), |_, _, _| true).is_err());
        // Many holders: the total stays within max_bytes.
        for i in 0..100u32 {
            let conn = ConnId {
                index: i,
                generation: 0,
            };
            h.hold(Holder::Conn(conn), "n", "t", &text, 16, at(30));
            assert!(h.usage().1 <= cfg.max_bytes);
        }
        assert!(h.order.len() <= 2 * h.recs.len() + 16);
        let conn = ConnId {
            index: 99,
            generation: 0,
        };
        let before = h.usage().0;
        h.drop_holder(conn);
        assert_eq!(h.usage().0, before - 1);
    }
}
