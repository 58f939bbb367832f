//! The gateway's metrics, served at `/metrics` in the OpenMetrics text format (which Prometheus
//! scrapes), through the `prometheus-client` crate.
//!
//! Counted as they happen: calls by node, tool and outcome, a call-latency histogram, frames and
//! bytes in and out, HTTP responses by route and status. Read from the router at each scrape:
//! nodes, controllers, handshakes and calls in flight, and its counters of refused input.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use foldhash::fast::RandomState as FastHash;
use hyper::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use toolwire_core::ErrorCode;

use super::rest::Route;
use crate::gateway::Gateway;

/// Distinct (node, tool) pairs the call counters keep apart; calls of pairs past it are counted
/// under `node="_other", tool="_other"`, so nodes that come and go under new ids cannot grow
/// the metrics without bound.
pub const MAX_CALL_SERIES: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    node: String,
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

/// The counters kept between scrapes.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Histogram,
    /// Frames received from peers.
    pub(crate) frames_in: Counter<u64, AtomicU64>,
    /// Frames sent to peers.
    pub(crate) frames_out: Counter<u64, AtomicU64>,
    /// Bytes of frames received (payload, before framing).
    pub(crate) bytes_in: Counter<u64, AtomicU64>,
    /// Bytes of frames sent (payload, before framing).
    pub(crate) bytes_out: Counter<u64, AtomicU64>,
    http: Family<HttpLabels, Counter>,
    /// Stream frames skipped: oversized, or not valid COBS.
    pub(crate) dropped_stream_frames: Counter<u64, AtomicU64>,
    /// WebSocket messages over the frame limit (the connection closes, 1009).
    pub(crate) oversized_messages: Counter<u64, AtomicU64>,
    /// The counters of each (node, tool) pair with series of their own, by outcome, looked up
    /// by `&str` (no label set built per call); `pairs` counts them against
    /// [`MAX_CALL_SERIES`].
    series: Mutex<Series>,
}

/// A (node, tool) pair's counters, by outcome name.
type ByOutcome = Vec<(&'static str, Counter)>;

#[derive(Debug, Default)]
struct Series {
    by_node: HashMap<String, HashMap<String, ByOutcome, FastHash>, FastHash>,
    pairs: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("toolwire");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls that ended, by node, tool and outcome (ok, or the error's name)",
            calls.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "call_duration_seconds",
            "Time from dispatch to completion of calls that ended",
            latency.clone(),
        );
        let frames_in = Counter::default();
        let frames_out = Counter::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        registry.register(
            "frames_in",
            "Frames received from nodes and controllers",
            frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames sent to nodes and controllers",
            frames_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Bytes of frames received (before framing)",
            bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Bytes of frames sent (before framing)",
            bytes_out.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by route pattern and status",
            http.clone(),
        );
        Metrics {
            registry,
            calls,
            latency,
            frames_in,
            frames_out,
            bytes_in,
            bytes_out,
            http,
            dropped_stream_frames: Counter::default(),
            oversized_messages: Counter::default(),
            series: Mutex::default(),
        }
    }
}

/// The name of a call's outcome in the `outcome` label.
pub fn outcome_name(outcome: Result<(), i32>) -> &'static str {
    let Err(code) = outcome else { return "ok" };
    match ErrorCode::from_code(code) {
        Some(ErrorCode::ParseError) => "parse_error",
        Some(ErrorCode::InvalidRequest) => "invalid_request",
        Some(ErrorCode::MethodNotFound) => "method_not_found",
        Some(ErrorCode::InvalidParams) => "invalid_params",
        Some(ErrorCode::InternalError) => "internal_error",
        Some(ErrorCode::ToolNotFound) => "tool_not_found",
        Some(ErrorCode::InvalidArguments) => "invalid_arguments",
        Some(ErrorCode::Timeout) => "timeout",
        Some(ErrorCode::Cancelled) => "cancelled",
        Some(ErrorCode::Busy) => "busy",
        Some(ErrorCode::Unauthorized) => "unauthorized",
        Some(ErrorCode::RateLimited) => "rate_limited",
        Some(ErrorCode::FrameTooLarge) => "frame_too_large",
        Some(ErrorCode::Disconnected) => "disconnected",
        Some(ErrorCode::VersionMismatch) => "version_mismatch",
        Some(ErrorCode::NodeNotFound) => "node_not_found",
        Some(ErrorCode::NotReady) => "not_ready",
        Some(ErrorCode::AskDeclined) => "ask_declined",
        Some(ErrorCode::ToolFailed) => "tool_failed",
        _ => "tool_error",
    }
}

impl Metrics {
    /// A call ended (any caller).
    pub(crate) fn call_finished(
        &self,
        node: &str,
        tool: &str,
        seconds: f64,
        outcome: Result<(), i32>,
    ) {
        self.latency.observe(seconds);
        let outcome = outcome_name(outcome);
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        // The common case, a pair and outcome seen before: two lookups and an increment.
        if let Some(by_outcome) = s.by_node.get(node).and_then(|t| t.get(tool))
            && let Some((_, c)) = by_outcome.iter().find(|(o, _)| *o == outcome)
        {
            c.inc();
            return;
        }
        let s = &mut *s;
        let known = s.by_node.get(node).is_some_and(|t| t.contains_key(tool));
        let (node, tool) = if known || s.pairs < MAX_CALL_SERIES {
            (node, tool)
        } else {
            ("_other", "_other")
        };
        if !s.by_node.get(node).is_some_and(|t| t.contains_key(tool)) {
            s.pairs += 1;
            s.by_node
                .entry(node.to_owned())
                .or_default()
                .insert(tool.to_owned(), Vec::new());
        }
        let Some(by_outcome) = s.by_node.get_mut(node).and_then(|t| t.get_mut(tool)) else {
            return;
        };
        match by_outcome.iter().find(|(o, _)| *o == outcome) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                let c = self
                    .calls
                    .get_or_create(&CallLabels {
                        node: node.to_owned(),
                        tool: tool.to_owned(),
                        outcome,
                    })
                    .clone();
                c.inc();
                by_outcome.push((outcome, c));
            }
        }
    }

    /// An HTTP response went out.
    pub(crate) fn http_response(&self, route: Route, status: StatusCode) {
        self.http
            .get_or_create(&HttpLabels {
                route: route.pattern(),
                status: status.as_u16(),
            })
            .inc();
    }

    /// The text of a scrape: the counters above, and the router's state now.
    pub(crate) fn render(&self, gw: &Gateway) -> String {
        let snap = gw.snapshot();
        let mut now = Registry::with_prefix("toolwire");
        let gauge = |r: &mut Registry, name: &str, help: &str, v: usize| {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
            r.register(name, help, g);
        };
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(v);
            r.register(name, help, c);
        };
        gauge(&mut now, "nodes", "Nodes connected", snap.nodes);
        gauge(
            &mut now,
            "controllers",
            "Controllers connected",
            snap.controllers,
        );
        gauge(
            &mut now,
            "handshakes",
            "Connections accepted whose hello is not accepted yet",
            snap.handshakes,
        );
        gauge(
            &mut now,
            "calls_in_flight",
            "Calls dispatched and not ended",
            snap.in_flight,
        );
        let st = snap.stats;
        let rejected = Family::<ClassLabels, Counter>::default();
        for (class, v) in [
            ("malformed", st.malformed),
            ("refused_full", st.refused_full),
            ("cut_off", st.cut_off),
            ("late_answer", st.late_answers),
            ("stream_frame_dropped", self.dropped_stream_frames.get()),
            ("websocket_message_too_large", self.oversized_messages.get()),
        ] {
            rejected.get_or_create(&ClassLabels { class }).inc_by(v);
        }
        now.register(
            "rejected_input",
            "Input refused or dropped, by class: frames that did not decode, peers refused for a full gateway, peers cut off for not reading, answers after their call ended, stream frames skipped (oversized or not COBS), WebSocket messages over the frame limit",
            rejected,
        );
        counter(
            &mut now,
            "schema_rejections",
            "Calls refused because their arguments broke the tool's schema",
            st.schema_rejections,
        );
        counter(
            &mut now,
            "cache_hits",
            "Calls the result cache answered without reaching a node",
            st.cache_hits,
        );
        counter(
            &mut now,
            "cache_misses",
            "Calls to cacheable tools (read-only and idempotent) the result cache could not answer",
            st.cache_misses,
        );
        counter(
            &mut now,
            "results_held",
            "Results longer than their call's budget (max_result_bytes), held to be read in pages",
            st.results_held,
        );
        counter(
            &mut now,
            "rate_limited",
            "Calls refused by the per-node rate limit",
            st.rate_limited,
        );
        counter(
            &mut now,
            "heartbeat_drops",
            "Peers closed after three heartbeat intervals of silence",
            st.heartbeat_drops,
        );
        counter(
            &mut now,
            "dropped_progress",
            "Progress reports not relayed to their caller",
            st.dropped_progress,
        );
        let mut text = String::new();
        let _ = encode_registry(&mut text, &self.registry);
        let _ = encode_registry(&mut text, &now);
        let _ = encode_eof(&mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past [`MAX_CALL_SERIES`] pairs, calls are counted under `_other`; counts add up.
    #[test]
    fn call_series_are_capped_and_counts_add_up() {
        let m = Metrics::default();
        for i in 0..MAX_CALL_SERIES + 10 {
            m.call_finished(&format!("n{i}"), "t", 0.001, Ok(()));
        }
        m.call_finished("n0", "t", 0.001, Ok(()));
        m.call_finished("n0", "t", 0.001, Err(-32003));
        m.call_finished("late", "t", 0.001, Err(7));
        let mut text = String::new();
        encode_registry(&mut text, &m.registry).unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("toolwire_calls_total{"))
            .collect();
        assert_eq!(
            series.len(),
            MAX_CALL_SERIES + 3,
            "each pair ok, n0 timeout, _other ok and tool_error"
        );
        let value = |labels: &str| -> u64 {
            let l = format!("toolwire_calls_total{{{labels}}} ");
            series
                .iter()
                .find_map(|s| s.strip_prefix(&l))
                .unwrap_or_else(|| panic!("no {l}"))
                .parse()
                .unwrap()
        };
        assert_eq!(value(r#"node="n0",tool="t",outcome="ok""#), 2);
        assert_eq!(value(r#"node="n0",tool="t",outcome="timeout""#), 1);
        assert_eq!(value(r#"node="_other",tool="_other",outcome="ok""#), 10);
        assert_eq!(
            value(r#"node="_other",tool="_other",outcome="tool_error""#),
            1
        );
        assert!(text.contains(&format!(
            "toolwire_call_duration_seconds_count {}",
            MAX_CALL_SERIES + 13
        )));
    }
}
