//! What other libraries decode our frames into.
//!
//! - [`json`]: borrowed serde_json structs. Strings borrow from the frame (`&str`, so they must
//!   be escape-free, as the fixtures' names and descriptions are) and raw JSON values are
//!   `&RawValue`, which serde_json validates while borrowing it, much as toolwire-core's `Json`
//!   is validated. The same structs serialize to exactly toolwire-core's JSON bytes.
//! - [`pc`]: a plain `#[derive]`d postcard layout. For `execute` and `result` it is byte for byte
//!   toolwire-core's postcard frame; for `register` the tool list is a `Vec` (element count
//!   prefix) where toolwire-core has a byte-length prefix, so those bytes differ by a byte or
//!   two.
//!
//! jsonrpsee-types needs no types of ours: it parses into `jsonrpsee_types::Request`.

/// serde_json peers.
pub mod json {
    use serde::{Deserialize, Serialize};

    use crate::fixtures::{self, FrameKind};
    use serde_json::value::RawValue;

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
    fn is_false(b: &bool) -> bool {
        !*b
    }

    /// An `execute` request.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct ExecuteRequest<'a> {
        /// `"2.0"`.
        pub jsonrpc: &'a str,
        /// Request id.
        pub id: u64,
        /// `"execute"`.
        pub method: &'a str,
        /// The call.
        #[serde(borrow)]
        pub params: ExecuteParams<'a>,
    }

    /// `execute` params.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct ExecuteParams<'a> {
        /// Tool name.
        pub tool: &'a str,
        /// Arguments object, validated and borrowed.
        #[serde(borrow)]
        pub arguments: &'a RawValue,
        /// Deadline.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub deadline_ms: Option<u32>,
    }

    /// A `register` request.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct RegisterRequest<'a> {
        /// `"2.0"`.
        pub jsonrpc: &'a str,
        /// Request id.
        pub id: u64,
        /// `"register"`.
        pub method: &'a str,
        /// The tools.
        #[serde(borrow)]
        pub params: RegisterParams<'a>,
    }

    /// `register` params.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct RegisterParams<'a> {
        /// The tools.
        #[serde(borrow)]
        pub tools: Vec<Tool<'a>>,
    }

    /// A tool definition.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct Tool<'a> {
        /// Name.
        pub name: &'a str,
        /// Description.
        pub description: &'a str,
        /// JSON Schema of the arguments.
        #[serde(borrow)]
        pub input_schema: &'a RawValue,
        /// JSON Schema of the result.
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        pub output_schema: Option<&'a RawValue>,
        /// Hints.
        #[serde(default)]
        pub annotations: Annotations,
    }

    /// Tool hints; `false` flags are left out, as toolwire-core writes them.
    #[derive(Debug, Default, Deserialize, Serialize)]
    pub struct Annotations {
        /// Does not change its environment.
        #[serde(default, skip_serializing_if = "is_false")]
        pub read_only: bool,
        /// May destroy data.
        #[serde(default, skip_serializing_if = "is_false")]
        pub destructive: bool,
        /// Repeatable.
        #[serde(default, skip_serializing_if = "is_false")]
        pub idempotent: bool,
    }

    /// A successful response.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct Response<'a> {
        /// `"2.0"`.
        pub jsonrpc: &'a str,
        /// Request id.
        pub id: u64,
        /// The tool's value, validated and borrowed.
        #[serde(borrow)]
        pub result: &'a RawValue,
    }

    fn raw(text: &'static str) -> &'static RawValue {
        serde_json::from_str(text).expect("fixture JSON is valid")
    }

    /// The fixture `execute` of `kind` (an `execute` kind) as this type.
    pub fn execute_request(kind: FrameKind) -> ExecuteRequest<'static> {
        let e = match kind {
            FrameKind::ExecuteSmall => fixtures::execute_small(),
            FrameKind::Execute4k => fixtures::execute_4k(),
            _ => panic!("{kind:?} is not an execute"),
        };
        ExecuteRequest {
            jsonrpc: "2.0",
            id: kind.id(),
            method: "execute",
            params: ExecuteParams {
                tool: e.tool.raw(),
                arguments: raw(e.arguments.as_str()),
                deadline_ms: e.deadline_ms,
            },
        }
    }

    /// The fixture `register` as this type.
    pub fn register_request() -> RegisterRequest<'static> {
        let tools = fixtures::TOOLS
            .iter()
            .map(|t| Tool {
                name: t.name.raw(),
                description: t.description.raw(),
                input_schema: raw(t.input_schema.as_str()),
                output_schema: t.output_schema.map(|s| raw(s.as_str())),
                annotations: Annotations {
                    read_only: t.annotations.read_only,
                    destructive: t.annotations.destructive,
                    idempotent: t.annotations.idempotent,
                },
            })
            .collect();
        RegisterRequest {
            jsonrpc: "2.0",
            id: FrameKind::Register.id(),
            method: "register",
            params: RegisterParams { tools },
        }
    }

    /// The fixture result as this type.
    pub fn response() -> Response<'static> {
        Response {
            jsonrpc: "2.0",
            id: FrameKind::Result.id(),
            result: raw(fixtures::RESULT),
        }
    }
}

/// Plain derived postcard layouts.
pub mod pc {
    use serde::{Deserialize, Serialize};

    use crate::fixtures::{self, FrameKind};

    /// Frame tags (first byte).
    pub const REQUEST: u8 = 0;
    /// Result frame tag.
    pub const RESULT: u8 = 2;

    /// A request id.
    #[derive(Debug, PartialEq, Eq, Deserialize, Serialize)]
    pub enum Id<'a> {
        /// Number.
        Num(u64),
        /// String.
        Str(&'a str),
        /// Null.
        Null,
    }

    /// A request frame: tag, id, request.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct RequestFrame<'a> {
        /// [`REQUEST`].
        pub tag: u8,
        /// Request id.
        #[serde(borrow)]
        pub id: Id<'a>,
        /// What is asked.
        #[serde(borrow)]
        pub request: Request<'a>,
    }

    /// The request variants up to `execute` (variant indices as in PROTOCOL.md).
    #[derive(Debug, Deserialize, Serialize)]
    pub enum Request<'a> {
        /// `hello` (unused here).
        Hello,
        /// `register`.
        #[serde(borrow)]
        Register(Vec<Tool<'a>>),
        /// `unregister` (unused here).
        Unregister,
        /// `execute`.
        #[serde(borrow)]
        Execute(Execute<'a>),
    }

    /// `execute` params; JSON text as `&str` (same bytes as toolwire-core's byte string).
    #[derive(Debug, Deserialize, Serialize)]
    pub struct Execute<'a> {
        /// Tool name.
        pub tool: &'a str,
        /// Arguments as JSON text (not validated as JSON).
        pub arguments: &'a str,
        /// Deadline.
        pub deadline_ms: Option<u32>,
    }

    /// A tool definition.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct Tool<'a> {
        /// Name.
        pub name: &'a str,
        /// Description.
        pub description: &'a str,
        /// JSON Schema text.
        pub input_schema: &'a str,
        /// JSON Schema text of the result.
        pub output_schema: Option<&'a str>,
        /// Read-only, destructive, idempotent.
        pub annotations: (bool, bool, bool),
    }

    /// The fixture `execute` of `kind` (an `execute` kind) in this layout.
    pub fn execute_frame(kind: FrameKind) -> RequestFrame<'static> {
        let e = match kind {
            FrameKind::ExecuteSmall => fixtures::execute_small(),
            FrameKind::Execute4k => fixtures::execute_4k(),
            _ => panic!("{kind:?} is not an execute"),
        };
        RequestFrame {
            tag: REQUEST,
            id: Id::Num(kind.id()),
            request: Request::Execute(Execute {
                tool: e.tool.raw(),
                arguments: e.arguments.as_str(),
                deadline_ms: e.deadline_ms,
            }),
        }
    }

    /// The fixture `register` in this layout.
    pub fn register_frame() -> RequestFrame<'static> {
        let tools = fixtures::TOOLS
            .iter()
            .map(|t| Tool {
                name: t.name.raw(),
                description: t.description.raw(),
                input_schema: t.input_schema.as_str(),
                output_schema: t.output_schema.map(|s| s.as_str()),
                annotations: (
                    t.annotations.read_only,
                    t.annotations.destructive,
                    t.annotations.idempotent,
                ),
            })
            .collect();
        RequestFrame {
            tag: REQUEST,
            id: Id::Num(FrameKind::Register.id()),
            request: Request::Register(tools),
        }
    }

    /// The fixture result in this layout.
    pub fn result_frame() -> ResultFrame<'static> {
        ResultFrame {
            tag: RESULT,
            id: Id::Num(FrameKind::Result.id()),
            result: fixtures::RESULT,
        }
    }

    /// A result frame: tag, id, JSON text.
    #[derive(Debug, Deserialize, Serialize)]
    pub struct ResultFrame<'a> {
        /// [`RESULT`].
        pub tag: u8,
        /// Request id.
        #[serde(borrow)]
        pub id: Id<'a>,
        /// The tool's value as JSON text (not validated as JSON).
        pub result: &'a str,
    }
}
