//! What a router is told: connection settings, tokens with their ACLs, rate limits.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Duration;
use crate::gateway::GatewayConfig;

/// Settings of a [`super::Router`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Settings every connection gets (name, encodings, frame size, in-flight limit,
    /// heartbeat, handshake timeout, decoder limits). `auth` is ignored: the router checks
    /// tokens itself against [`RouterConfig::tokens`].
    pub connection: GatewayConfig<'static>,
    /// Accepted tokens. Empty: anyone may connect.
    pub tokens: Vec<TokenSpec>,
    /// Calls per second a node accepts, if limited.
    pub rate_limit: Option<RateLimit>,
    /// Deadline of calls made without one (a controller's `tools.call` without `deadline_ms`,
    /// a local call with `None`). Every call has a deadline, so every call completes.
    pub default_deadline: Duration,
    /// Nodes connected at once, at most, counted by id once their `hello` is accepted. A node
    /// past the limit is refused in its welcome with `-32005 busy` ("gateway full: N nodes
    /// connected") and its connection closes; nothing else is disturbed. A node whose id is
    /// connected already is not refused: it replaces the older connection.
    pub max_nodes: usize,
    /// Controllers connected at once, at most, counted once their `hello` is accepted; past it,
    /// `-32005` as for nodes. Separate from [`RouterConfig::max_nodes`] so that a flood of nodes
    /// cannot lock the operator's controller out.
    pub max_controllers: usize,
    /// Connections whose handshake is not done (no `hello` accepted yet, or refused and not
    /// yet closed), at most: [`super::Router::open`] refuses beyond. Each is also bounded in
    /// time by the handshake timeout, so a flood of silent sockets holds at most this many
    /// connections for that long.
    pub max_handshakes: usize,
    /// Bytes queued for one connection, at most. A peer that does not read its frames while
    /// more pile up is cut off (its calls fail with `-32009 disconnected`), so a slow reader
    /// cannot grow the gateway's memory.
    pub max_queued: usize,
    /// The result cache, if on (off by default): see [`super::CacheConfig`].
    pub cache: Option<super::CacheConfig>,
    /// Bounds of the results held for calls with a result budget (`max_result_bytes`): see
    /// [`super::HeldConfig`].
    pub held: super::HeldConfig,
}

/// Default of [`RouterConfig::max_nodes`].
pub const DEFAULT_MAX_NODES: usize = 16_384;
/// Default of [`RouterConfig::max_controllers`].
pub const DEFAULT_MAX_CONTROLLERS: usize = 256;
/// Default of [`RouterConfig::max_handshakes`].
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

impl RouterConfig {
    /// Defaults: [`GatewayConfig::new`]`(name)`, no tokens, no rate limit, 30 s default
    /// deadline, 16 frames of the maximum size queued per connection, and limits sized for a
    /// fleet: 16,384 nodes, 256 controllers and 1,024 handshakes at once
    /// ([`DEFAULT_MAX_NODES`], [`DEFAULT_MAX_CONTROLLERS`], [`DEFAULT_MAX_HANDSHAKES`]). Every
    /// connection is a socket, so together they need 17,664 file descriptors (see
    /// [`RouterConfig::max_connections`]); that fits a process limit of 20,000 with room for
    /// listeners and files, and a host with a lower limit (1,024 is a common default) must
    /// raise it or lower these.
    pub fn new(name: &str) -> Self {
        let connection = GatewayConfig::new(name);
        RouterConfig {
            max_queued: 16 * connection.max_frame as usize,
            connection,
            tokens: Vec::new(),
            rate_limit: None,
            default_deadline: Duration::from_secs(30),
            max_nodes: DEFAULT_MAX_NODES,
            max_controllers: DEFAULT_MAX_CONTROLLERS,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            cache: None,
            held: super::HeldConfig::default(),
        }
    }

    /// Connections the limits allow at once: nodes, controllers and handshakes added up (plus,
    /// for a moment, connections a reconnecting node replaced, while their goodbye is sent).
    /// A runtime sizes its socket cap and file descriptor budget by this.
    pub fn max_connections(&self) -> usize {
        self.max_nodes
            .saturating_add(self.max_controllers)
            .saturating_add(self.max_handshakes)
    }
}

/// A token the router accepts, and what it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The secret, compared in constant time.
    pub token: String,
    /// May connect as a node.
    pub node: bool,
    /// May connect as a controller.
    pub controller: bool,
    /// Tools a controller with this token may call.
    pub acl: Acl,
}

impl TokenSpec {
    /// A token for every role and every tool.
    pub fn any(token: impl Into<String>) -> Self {
        TokenSpec {
            token: token.into(),
            node: true,
            controller: true,
            acl: Acl::default(),
        }
    }
}

/// What a token may call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    /// Patterns of tools the token may call: `node/tool`, or `tool` (on any node); `*` matches
    /// any run of characters. Empty: every tool.
    pub allow: Vec<String>,
    /// Patterns of tools the token may not call (checked after `allow`).
    pub deny: Vec<String>,
}

impl Acl {
    /// True if `tool` on `node` may be called.
    pub fn permits(&self, node: &str, tool: &str) -> bool {
        let matches = |p: &String| tool_matches(p, node, tool);
        (self.allow.is_empty() || self.allow.iter().any(matches)) && !self.deny.iter().any(matches)
    }
}

impl Acl {
    /// An active tool set (`tools.scope`, PROTOCOL.md section 6) from its patterns, as an
    /// allow-list: `None` for no patterns (every tool). Refused with `-32602` unless there are
    /// at most [`MAX_SCOPE`](super::MAX_SCOPE) patterns of 1 to
    /// [`MAX_SCOPE_PATTERN`](super::MAX_SCOPE_PATTERN) bytes with at most one `/`.
    pub fn tool_set<'p>(
        patterns: impl IntoIterator<Item = &'p str>,
    ) -> Result<Option<Acl>, super::Failure> {
        use super::{MAX_SCOPE, MAX_SCOPE_PATTERN};
        let mut allow = Vec::new();
        for p in patterns {
            if allow.len() == MAX_SCOPE {
                return Err(super::Failure::new(
                    crate::ErrorCode::InvalidParams,
                    alloc::format!("a tool set has at most {MAX_SCOPE} patterns"),
                ));
            }
            if p.is_empty() || p.len() > MAX_SCOPE_PATTERN || p.matches('/').count() > 1 {
                return Err(super::Failure::new(
                    crate::ErrorCode::InvalidParams,
                    alloc::format!(
                        "a tool set pattern is `tool` or `node/tool`, 1 to {MAX_SCOPE_PATTERN} bytes"
                    ),
                ));
            }
            allow.push(p.into());
        }
        Ok((!allow.is_empty()).then(|| Acl {
            allow,
            deny: Vec::new(),
        }))
    }
}

/// Ask rules one connection may have (`rules.set`), at most.
pub const MAX_RULES: usize = 64;
/// Bytes of a rule's prompt pattern, at most.
pub const MAX_RULE_PROMPT: usize = 1024;
/// Bytes of a rule's answer (JSON text), at most.
pub const MAX_RULE_ANSWER: usize = 4096;

/// An ask rule as the router keeps it (`rules.set`, PROTOCOL.md section 6): the asks it matches
/// (tool pattern, kind, prompt pattern) and what it does with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AskRule {
    /// `node/tool` or `tool`, `*` for any run of characters.
    pub tool: String,
    /// Only asks of this kind; `None`: both.
    pub kind: Option<crate::frame::AskKind>,
    /// Pattern the ask's prompt (unescaped) must match; `None`: any.
    pub prompt: Option<String>,
    /// What it does.
    pub decision: crate::frame::Decision,
    /// The answer an `allow` gives an input ask, JSON text.
    pub answer: Option<String>,
}

impl AskRule {
    /// The rule a `rules.set` entry describes, or why it is not one (`-32602`): the tool
    /// pattern as a `tools.scope` pattern; a prompt pattern of at most [`MAX_RULE_PROMPT`]
    /// bytes; an `answer` only on an `allow`, of at most [`MAX_RULE_ANSWER`] bytes; and an
    /// `allow` for input asks (`kind` `input`) must carry one.
    pub fn from_wire(r: &crate::frame::Rule<'_>) -> Result<AskRule, super::Failure> {
        use crate::frame::{AskKind, Decision};
        let bad = |why: &str| {
            Err(super::Failure::new(
                crate::ErrorCode::InvalidParams,
                alloc::format!("ask rule for `{}`: {why}", r.tool.raw()),
            ))
        };
        let Some(Some(tool)) = Acl::tool_set([r.tool.raw()])
            .ok()
            .map(|a| a.map(|a| a.allow))
        else {
            return bad("the tool pattern is `tool` or `node/tool`, 1 to 129 bytes");
        };
        let prompt = r.prompt.map(|p| alloc::string::ToString::to_string(&p));
        if prompt.as_ref().is_some_and(|p| p.len() > MAX_RULE_PROMPT) {
            return bad("the prompt pattern is too long");
        }
        match (r.decision, r.kind, r.answer) {
            (Decision::Allow, Some(AskKind::Input), None) => {
                return bad("an allow for input asks needs an answer");
            }
            (Decision::Allow, _, Some(a)) if a.as_str().len() > MAX_RULE_ANSWER => {
                return bad("the answer is too long");
            }
            (Decision::Deny | Decision::Forward, _, Some(_)) => {
                return bad("only an allow carries an answer");
            }
            _ => {}
        }
        Ok(AskRule {
            tool: tool.into_iter().next().unwrap_or_default(),
            kind: r.kind,
            prompt,
            decision: r.decision,
            answer: r.answer.map(|a| a.as_str().into()),
        })
    }

    /// The rule as it travels in `rules.list`.
    pub fn to_wire(&self) -> crate::frame::Rule<'_> {
        crate::frame::Rule {
            tool: crate::Str::new(&self.tool),
            kind: self.kind,
            prompt: self.prompt.as_deref().map(crate::Str::new),
            decision: self.decision,
            answer: self
                .answer
                .as_deref()
                .map(|a| crate::Json::trusted(a.as_bytes())),
        }
    }

    /// True if the rule decides this ask: tool, kind and prompt match, and an `allow` without
    /// an answer (which has nothing to give an input ask) meets a permission ask.
    pub fn matches(
        &self,
        node: &str,
        tool: &str,
        kind: crate::frame::AskKind,
        prompt: &str,
    ) -> bool {
        use crate::frame::{AskKind, Decision};
        self.kind.is_none_or(|k| k == kind)
            && !(self.decision == Decision::Allow
                && self.answer.is_none()
                && kind == AskKind::Input)
            && self.prompt.as_deref().is_none_or(|p| glob(p, prompt))
            && tool_matches(&self.tool, node, tool)
    }
}

/// A tool pattern (`node/tool`, or `tool` on any node) against a node's tool.
fn tool_matches(pattern: &str, node: &str, tool: &str) -> bool {
    match pattern.split_once('/') {
        Some((n, t)) => glob(n, node) && glob(t, tool),
        None => glob(pattern, tool),
    }
}

/// `*` matches any run of characters; everything else matches itself. Iterative, so a pattern
/// with many stars costs O(pattern × text) at worst, never exponential time.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Calls per second a node accepts: a token bucket refilled on the time the runtime passes in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained calls per second.
    pub per_second: f64,
    /// Calls allowed in a burst.
    pub burst: u32,
}

/// One node's bucket.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    tokens: f64,
    last: crate::Instant,
}

impl Bucket {
    pub(super) fn full(limit: Option<RateLimit>, now: crate::Instant) -> Self {
        Bucket {
            tokens: limit.map_or(0.0, |l| f64::from(l.burst)),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(super) fn take(&mut self, limit: RateLimit, now: crate::Instant) -> bool {
        let elapsed = now.saturating_since(self.last).as_millis() as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst));
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Gives back a token taken for a call that was not made.
    pub(super) fn refund(&mut self) {
        self.tokens += 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob("*", ""));
        assert!(glob("read_*", "read_sensor"));
        assert!(!glob("read_*", "write_led"));
        assert!(glob("*_sensor", "read_sensor"));
        assert!(glob("r*d*r", "read_sensor"));
        assert!(!glob("r*d*x", "read_sensor"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        // Many stars against a long text stays polynomial.
        let long = "a".repeat(2000);
        assert!(!glob(&("*a".repeat(50) + "b"), &long));
    }

    #[test]
    fn acl_allow_then_deny() {
        let acl = Acl {
            allow: vec!["dev-*/read_*".into(), "echo".into()],
            deny: vec!["dev-2/*".into()],
        };
        assert!(acl.permits("dev-1", "read_sensor"));
        assert!(acl.permits("box", "echo"));
        assert!(!acl.permits("dev-1", "set_led"));
        assert!(!acl.permits("dev-2", "read_sensor"));
        assert!(Acl::default().permits("any", "thing"));
    }

    #[test]
    fn bucket_refills_on_injected_time() {
        let limit = RateLimit {
            per_second: 2.0,
            burst: 2,
        };
        let t0 = crate::Instant(1000);
        let mut b = Bucket::full(Some(limit), t0);
        assert!(b.take(limit, t0));
        assert!(b.take(limit, t0));
        assert!(!b.take(limit, t0));
        assert!(!b.take(limit, crate::Instant(1400)));
        assert!(b.take(limit, crate::Instant(1500)));
    }
}
