//! JSON-RPC 2.0 and MCP message shapes: sorting an incoming line, the responses and
//! notifications the bridge writes, and the negotiated protocol version.

use serde_json::{Map, Value, json};

// JSON-RPC error codes.
pub(super) const PARSE_ERROR: i32 = -32700;
pub(super) const INVALID_REQUEST: i32 = -32600;
pub(super) const METHOD_NOT_FOUND: i32 = -32601;
pub(super) const INVALID_PARAMS: i32 = -32602;
pub(super) const INTERNAL_ERROR: i32 = -32603;

/// A negotiated MCP version; later versions add fields to the same messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Version {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    /// The stateless revision: no `initialize`, every request says its version and the
    /// client's capabilities in `_meta` (served at `/mcp` only, see the `modern` module).
    V2026_07_28,
}

impl Version {
    pub(super) const LATEST: Version = Version::V2025_11_25;

    fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "2024-11-05" => Version::V2024_11_05,
            "2025-03-26" => Version::V2025_03_26,
            "2025-06-18" => Version::V2025_06_18,
            "2025-11-25" => Version::V2025_11_25,
            _ => return None,
        })
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Version::V2024_11_05 => "2024-11-05",
            Version::V2025_03_26 => "2025-03-26",
            Version::V2025_06_18 => "2025-06-18",
            Version::V2025_11_25 => "2025-11-25",
            Version::V2026_07_28 => "2026-07-28",
        }
    }

    /// Tool annotations and progress messages.
    pub(super) fn has_annotations(self) -> bool {
        self >= Version::V2025_03_26
    }

    /// `title`, `outputSchema` and `structuredContent`.
    pub(super) fn has_structured(self) -> bool {
        self >= Version::V2025_06_18
    }
}

/// The version to answer a client that asks for `requested`.
pub(super) fn negotiate(requested: &str) -> Version {
    Version::parse(requested).unwrap_or(Version::LATEST)
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct RpcError {
    code: i32,
    message: String,
}

impl RpcError {
    pub(super) fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub(super) fn params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub(super) fn message(&self) -> &str {
        &self.message
    }
}

pub(super) fn notification(method: &str, params: Option<Value>) -> Value {
    let mut n = json!({"jsonrpc": "2.0", "method": method});
    if let Some(p) = params {
        n["params"] = p;
    }
    n
}

pub(super) fn response(id: &Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => error_response(id, e.code, &e.message),
    }
}

pub(super) fn error_response(id: &Value, code: i32, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// One line from the client, sorted.
#[derive(Debug, PartialEq)]
pub(super) enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to a request of ours (`elicitation/create`): its id and the whole message.
    Response {
        id: Value,
        message: Value,
    },
    /// A notification whose params are not an object: ignored.
    Ignored,
    /// Answer with this error.
    Invalid {
        id: Value,
        code: i32,
        message: String,
    },
}

pub(super) fn parse_message(line: &[u8]) -> Incoming {
    let invalid = |id: Value, code, message: &str| Incoming::Invalid {
        id,
        code,
        message: message.to_owned(),
    };
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return invalid(Value::Null, PARSE_ERROR, &format!("parse error: {e}")),
    };
    let whole = v.clone();
    let mut obj = match v {
        Value::Object(o) => o,
        Value::Array(_) => {
            return invalid(
                Value::Null,
                INVALID_REQUEST,
                "JSON-RPC batches are not supported",
            );
        }
        _ => return invalid(Value::Null, INVALID_REQUEST, "not a JSON-RPC message"),
    };
    // An id we can echo: a string or an integer (MCP forbids null).
    let id = match obj.remove("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(id @ Value::Number(_)) if id.is_i64() || id.is_u64() => Some(id),
        Some(_) => {
            return invalid(
                Value::Null,
                INVALID_REQUEST,
                "`id` must be a string or an integer",
            );
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(reply_id, INVALID_REQUEST, "`jsonrpc` must be \"2.0\"");
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return invalid(reply_id, INVALID_REQUEST, "`method` must be a string"),
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            return Incoming::Response {
                id: reply_id,
                message: whole,
            };
        }
        None => return invalid(reply_id, INVALID_REQUEST, "no `method`"),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return match id {
                Some(id) => invalid(id, INVALID_PARAMS, "`params` must be an object"),
                None => Incoming::Ignored,
            };
        }
    };
    match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::PROTOCOL_VERSIONS;

    #[test]
    fn versions_are_echoed_or_the_latest() {
        for v in PROTOCOL_VERSIONS {
            assert_eq!(negotiate(v).as_str(), v);
        }
        assert_eq!(negotiate("2099-01-01").as_str(), PROTOCOL_VERSIONS[0]);
        assert_eq!(negotiate("").as_str(), PROTOCOL_VERSIONS[0]);
    }

    #[test]
    fn messages_are_sorted_and_checked() {
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#),
            Incoming::Request {
                id: json!("x"),
                method: "ping".into(),
                params: json!({})
            }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Incoming::Notification {
                method: "notifications/initialized".into(),
                params: json!({})
            }
        );
        assert_eq!(
            parse_message(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Incoming::Response {
                id: json!(3),
                message: json!({"jsonrpc": "2.0", "id": 3, "result": {}})
            }
        );
        let code = |line: &[u8]| match parse_message(line) {
            Incoming::Invalid { id, code, .. } => (id, code),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{nope"), (Value::Null, PARSE_ERROR));
        assert_eq!(code(b"[]"), (Value::Null, INVALID_REQUEST));
        assert_eq!(code(b"7"), (Value::Null, INVALID_REQUEST));
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            (Value::Null, INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
            (json!(4), INVALID_REQUEST)
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}"#),
            (json!(5), INVALID_PARAMS)
        );
    }
}
