//! Error codes that travel in error responses.

use core::fmt;

/// The error codes of the protocol: JSON-RPC 2.0's own, and toolwire's in -32001..=-32099
/// (JSON-RPC's "implementation-defined server errors" range). Tools use positive codes of their
/// own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// -32700: the frame is not valid JSON (or not valid postcard).
    ParseError,
    /// -32600: valid JSON but not a valid request object (also: batches, which v1 refuses).
    InvalidRequest,
    /// -32601: unknown method.
    MethodNotFound,
    /// -32602: the params do not fit the method.
    InvalidParams,
    /// -32603: the receiver failed internally.
    InternalError,
    /// -32001: no such tool on that node.
    ToolNotFound,
    /// -32002: the arguments break the tool's schema or type.
    InvalidArguments,
    /// -32003: the call's deadline passed.
    Timeout,
    /// -32004: the call was cancelled.
    Cancelled,
    /// -32005: the node already runs as many calls as it allows; in answer to `hello`, the
    /// gateway has as many nodes (or controllers) connected as it allows.
    Busy,
    /// -32006: missing or wrong token, or the token may not use this tool.
    Unauthorized,
    /// -32007: too many calls for this node; try later.
    RateLimited,
    /// -32008: a frame exceeded the receiver's maximum size.
    FrameTooLarge,
    /// -32009: the node's connection was lost with the call pending.
    Disconnected,
    /// -32010: no protocol version in common.
    VersionMismatch,
    /// -32011: no such node connected.
    NodeNotFound,
    /// -32012: request before the handshake finished, or a second `hello`.
    NotReady,
    /// -32013: an `ask` was declined or had nobody to answer it.
    AskDeclined,
    /// -32014: the tool ran and failed (its message says why).
    ToolFailed,
    /// -32015: no held result by that handle for this caller (never held, expired, or
    /// dropped to make room); the call must be made again.
    ResultGone,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::InternalError,
        ErrorCode::ToolNotFound,
        ErrorCode::InvalidArguments,
        ErrorCode::Timeout,
        ErrorCode::Cancelled,
        ErrorCode::Busy,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::FrameTooLarge,
        ErrorCode::Disconnected,
        ErrorCode::VersionMismatch,
        ErrorCode::NodeNotFound,
        ErrorCode::NotReady,
        ErrorCode::AskDeclined,
        ErrorCode::ToolFailed,
        ErrorCode::ResultGone,
    ];

    /// The numeric code.
    pub const fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::ToolNotFound => -32001,
            ErrorCode::InvalidArguments => -32002,
            ErrorCode::Timeout => -32003,
            ErrorCode::Cancelled => -32004,
            ErrorCode::Busy => -32005,
            ErrorCode::Unauthorized => -32006,
            ErrorCode::RateLimited => -32007,
            ErrorCode::FrameTooLarge => -32008,
            ErrorCode::Disconnected => -32009,
            ErrorCode::VersionMismatch => -32010,
            ErrorCode::NodeNotFound => -32011,
            ErrorCode::NotReady => -32012,
            ErrorCode::AskDeclined => -32013,
            ErrorCode::ToolFailed => -32014,
            ErrorCode::ResultGone => -32015,
        }
    }

    /// The code for a number, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// A short default message.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parse error",
            ErrorCode::InvalidRequest => "invalid request",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::InvalidParams => "invalid params",
            ErrorCode::InternalError => "internal error",
            ErrorCode::ToolNotFound => "tool not found",
            ErrorCode::InvalidArguments => "invalid arguments",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Busy => "busy",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate limited",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::Disconnected => "disconnected",
            ErrorCode::VersionMismatch => "version mismatch",
            ErrorCode::NodeNotFound => "node not found",
            ErrorCode::NotReady => "not ready",
            ErrorCode::AskDeclined => "ask declined",
            ErrorCode::ToolFailed => "tool failed",
            ErrorCode::ResultGone => "result gone",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}
