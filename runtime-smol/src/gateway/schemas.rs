//! JSON Schema for the router: each tool's input schema compiled once with `jsonschema` when it
//! registers, every call's arguments checked before dispatch.

use serde_json::Value;
use toolwire_core::frame::{RejectReason, ToolDef};
use toolwire_core::router::{Failure, Schemas};
use toolwire_core::{ErrorCode, Json};

/// The host's schema engine.
#[derive(Debug, Default)]
pub(crate) struct JsonSchemas;

impl Schemas for JsonSchemas {
    type Compiled = jsonschema::Validator;

    fn compile(&mut self, tool: &ToolDef<'_>) -> Result<jsonschema::Validator, RejectReason> {
        let schema: Value = serde_json::from_slice(tool.input_schema.as_bytes())
            .map_err(|_| RejectReason::BadSchema)?;
        jsonschema::validator_for(&schema).map_err(|_| RejectReason::BadSchema)
    }

    fn check(&self, schema: &jsonschema::Validator, arguments: Json<'_>) -> Result<(), Failure> {
        // The arguments are strict JSON already (the codec checked them); what serde_json can
        // still refuse is a number beyond the range of a double, which no schema can check.
        let value: Value = serde_json::from_slice(arguments.as_bytes()).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidArguments,
                format!("arguments cannot be checked against the schema: {e}"),
            )
        })?;
        schema.validate(&value).map_err(|first| {
            Failure::new(
                ErrorCode::InvalidArguments,
                format!("arguments rejected by the schema: {first}"),
            )
            .with_data(serde_json::json!({ "path": first.instance_path().to_string() }).to_string())
        })
    }
}
