//! JSON Schema for the router: each tool's input schema compiled once with `jsonschema` when it
//! registers, every call's arguments checked before dispatch.
//!
//! A schema that accepts every object (`{"type":"object"}`, `{}`, `{"type":"object",
//! "properties":{}}`, with any annotations) is compiled like any other, so that a malformed one
//! is still refused, but calls of its tool are not checked: the codec already made sure the
//! arguments are a JSON object, which is all such a schema asks. Parsing them into a
//! `serde_json::Value` for `jsonschema` (which validates `Value`s only) was the larger part of a
//! gateway's work per call (benches/README.md, "Instructions per call").

use serde_json::Value;
use toolwire_core::frame::{RejectReason, ToolDef};
use toolwire_core::router::{Failure, Schemas};
use toolwire_core::{ErrorCode, Json};

/// The host's schema engine.
#[derive(Debug, Default)]
pub(crate) struct JsonSchemas;

/// A tool's compiled input schema.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// The schema accepts every JSON object: nothing to check.
    AnyObject,
    /// Arguments are parsed and validated.
    Check(Box<jsonschema::Validator>),
}

/// Keywords that do not constrain an instance (annotations, identifiers, comments).
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// True if `schema` accepts every JSON object: each keyword is an annotation, `"type":
/// "object"`, an empty `properties`, an empty `required`, or an `additionalProperties` of
/// `true` or `{}`. Anything else (a `$ref`, `not`, a keyword this list does not know) counts as
/// a constraint.
fn accepts_every_object(schema: &Value) -> bool {
    let empty_object = |v: &Value| v.as_object().is_some_and(|o| o.is_empty());
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => map.iter().all(|(k, v)| match k.as_str() {
            "type" => v == "object",
            "properties" | "patternProperties" => empty_object(v),
            "required" => v.as_array().is_some_and(|a| a.is_empty()),
            "additionalProperties" | "unevaluatedProperties" => {
                v == &Value::Bool(true) || empty_object(v)
            }
            k => ANNOTATIONS.contains(&k),
        }),
        _ => false,
    }
}

impl Schemas for JsonSchemas {
    type Compiled = Compiled;

    fn compile(&mut self, tool: &ToolDef<'_>) -> Result<Compiled, RejectReason> {
        let schema: Value = serde_json::from_slice(tool.input_schema.as_bytes())
            .map_err(|_| RejectReason::BadSchema)?;
        let validator = jsonschema::validator_for(&schema).map_err(|_| RejectReason::BadSchema)?;
        Ok(if accepts_every_object(&schema) {
            Compiled::AnyObject
        } else {
            Compiled::Check(Box::new(validator))
        })
    }

    fn check(&self, schema: &Compiled, arguments: Json<'_>) -> Result<(), Failure> {
        let Compiled::Check(schema) = schema else {
            return Ok(());
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use toolwire_core::Str;
    use toolwire_core::frame::{Annotations, ToolDef};

    fn compiled(schema: &str) -> Result<Compiled, RejectReason> {
        let tool = ToolDef {
            name: Str::new("t"),
            description: Str::new(""),
            input_schema: Json::trusted(schema.as_bytes()),
            output_schema: None,
            annotations: Annotations::NONE,
        };
        JsonSchemas.compile(&tool)
    }

    fn check(schema: &str, args: &str) -> Result<(), Failure> {
        JsonSchemas.check(&compiled(schema).unwrap(), Json::trusted(args.as_bytes()))
    }

    #[test]
    fn which_schemas_accept_every_object() {
        for s in [
            json!({}),
            json!(true),
            json!({"type": "object"}),
            json!({"type": "object", "properties": {}, "required": [],
                   "additionalProperties": true, "title": "t", "description": "d",
                   "$schema": "https://json-schema.org/draft/2020-12/schema"}),
            json!({"type": "object", "additionalProperties": {}}),
        ] {
            assert!(accepts_every_object(&s), "{s}");
        }
        for s in [
            json!(false),
            json!({"type": "array"}),
            json!({"type": ["object", "null"]}),
            json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
            json!({"type": "object", "required": ["a"]}),
            json!({"type": "object", "additionalProperties": false}),
            json!({"type": "object", "maxProperties": 2}),
            json!({"$ref": "#/$defs/a", "$defs": {"a": {"type": "object"}}}),
            json!({"not": {}}),
            json!({"x-unknown": 1}),
        ] {
            assert!(!accepts_every_object(&s), "{s}");
        }
    }

    /// The fast path skips the check, nothing else: a constraining schema still refuses, a bad
    /// schema is still refused at registration, and a schema that accepts every object accepts
    /// arguments a parse into doubles would have refused.
    #[test]
    fn checks_only_what_constrains() {
        assert!(matches!(
            compiled(r#"{"type":"object"}"#),
            Ok(Compiled::AnyObject)
        ));
        assert!(matches!(
            compiled(r#"{"type":"object","title":5}"#),
            Err(RejectReason::BadSchema)
        ));
        assert!(check(r#"{"type":"object"}"#, r#"{"a":1e400}"#).is_ok());
        let s = r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#;
        assert!(check(s, r#"{"a":1}"#).is_ok());
        let e = check(s, r#"{"a":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArguments.code());
        assert!(check(s, r#"{}"#).is_err());
        assert!(check(s, r#"{"a":1e400}"#).is_err());
    }
}
