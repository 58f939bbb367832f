//! `tools/list`: snapshots of every node's tools under their MCP names, and pages through a
//! snapshot by cursors. Under a result budget, [`READ_RESULT_TOOL`] comes after the nodes'
//! tools, as if the last of every snapshot.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::client::ToolSummary;
use serde_json::{Map, Value, json};
use toolwire_core::frame::Annotations;

use super::names::names;
use super::protocol::{INTERNAL_ERROR, RpcError, Version};
use super::{Bridge, READ_RESULT_TOOL};

/// Listing snapshots whose cursors stay valid.
const SNAPSHOTS: usize = 8;

/// The last few listing snapshots (cursors point into them); the newest routes calls.
#[derive(Default)]
pub(super) struct Catalogs {
    next_generation: u64,
    recent: VecDeque<Arc<Catalog>>,
}

/// One snapshot of every node's tools under their MCP names.
pub(super) struct Catalog {
    generation: u64,
    /// Sorted by (node, tool).
    tools: Vec<Listed>,
    by_name: HashMap<String, usize>,
}

pub(super) struct Listed {
    pub(super) name: String,
    pub(super) summary: ToolSummary,
}

impl Catalog {
    fn new(generation: u64, mut tools: Vec<ToolSummary>, bare: bool) -> Catalog {
        tools.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        tools.dedup_by(|a, b| a.node == b.node && a.name == b.name);
        let pairs: Vec<(&str, &str)> = tools
            .iter()
            .map(|t| (t.node.as_str(), t.name.as_str()))
            .collect();
        let names = names(&pairs, bare);
        let tools: Vec<Listed> = names
            .into_iter()
            .zip(tools)
            .map(|(name, summary)| Listed { name, summary })
            .collect();
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Catalog {
            generation,
            tools,
            by_name,
        }
    }

    pub(super) fn find(&self, name: &str) -> Option<&Listed> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }
}

/// A cursor names a snapshot and an offset in it; clients treat it as opaque.
fn encode_cursor(generation: u64, offset: usize) -> String {
    format!("{generation:x}-{offset:x}")
}

fn decode_cursor(s: &str) -> Option<(u64, usize)> {
    let (g, o) = s.split_once('-')?;
    Some((
        u64::from_str_radix(g, 16).ok()?,
        usize::from_str_radix(o, 16).ok()?,
    ))
}

impl Bridge {
    /// A fresh snapshot from the gateway, kept for its cursors.
    pub(super) async fn refresh(&self) -> Result<Arc<Catalog>, RpcError> {
        let client = self.client();
        let tools = client
            .tools(None, None)
            .await
            .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("listing tools: {e}")))?;
        let mut c = self.catalogs.lock().unwrap();
        let catalog = Arc::new(Catalog::new(c.next_generation, tools, self.opts.bare_names));
        c.next_generation += 1;
        c.recent.push_back(catalog.clone());
        while c.recent.len() > SNAPSHOTS {
            c.recent.pop_front();
        }
        Ok(catalog)
    }

    pub(super) fn latest(&self) -> Option<Arc<Catalog>> {
        self.catalogs.lock().unwrap().recent.back().cloned()
    }

    pub(super) async fn list_tools(
        &self,
        version: Version,
        params: &Value,
    ) -> Result<Value, RpcError> {
        let (catalog, offset) = match params.get("cursor") {
            None | Some(Value::Null) => (self.refresh().await?, 0),
            Some(Value::String(s)) => {
                let bad =
                    || RpcError::params("invalid or expired cursor; list again from the start");
                let (generation, offset) = decode_cursor(s).ok_or_else(bad)?;
                let c = self.catalogs.lock().unwrap();
                let catalog = c
                    .recent
                    .iter()
                    .find(|c| c.generation == generation)
                    .cloned()
                    .ok_or_else(bad)?;
                if offset > self.listed(&catalog) {
                    return Err(bad());
                }
                (catalog, offset)
            }
            Some(_) => return Err(RpcError::params("`cursor` must be a string")),
        };
        let size = self.opts.page_size.max(1);
        let listed = self.listed(&catalog);
        let end = (offset + size).min(listed);
        let budget = self.opts.max_result_bytes;
        let nodes_end = end.min(catalog.tools.len());
        let mut tools: Vec<Value> = catalog.tools[offset.min(nodes_end)..nodes_end]
            .iter()
            .map(|t| tool_json(t, version, budget.is_none()))
            .collect();
        if let Some(n) = budget
            && (offset..end).contains(&catalog.tools.len())
        {
            tools.push(read_tool_json(n, version));
        }
        let mut r = json!({ "tools": tools });
        if end < listed {
            r["nextCursor"] = json!(encode_cursor(catalog.generation, end));
        }
        Ok(r)
    }

    /// Tools listed for a snapshot: its tools, and [`READ_RESULT_TOOL`] under a budget.
    fn listed(&self, catalog: &Catalog) -> usize {
        catalog.tools.len() + usize::from(self.opts.max_result_bytes.is_some())
    }
}

/// [`READ_RESULT_TOOL`] as MCP lists it, for a budget of `budget` bytes.
fn read_tool_json(budget: u32, version: Version) -> Value {
    let u32_max = u32::MAX;
    let mut tool = json!({
        "name": READ_RESULT_TOOL,
        "description": format!(
            "Reads more of a tool result that was cut because it is longer than {budget} bytes. \
             Pass the handle and offset the note at the end of the cut result gives. The answer \
             is the next part of the result's JSON text; while more remains it ends with a note \
             giving the next offset, and the last part has no note. A result is kept for a few \
             minutes; after that, call its tool again."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "handle": {
                    "type": "string",
                    "description": "The handle from the truncation note, e.g. \"r1\"."
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": u32_max,
                    "description": "Where to read from, in bytes: the offset from the last note."
                },
                "length": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": u32_max,
                    "description": format!("Bytes to read at most (default {budget}).")
                }
            },
            "required": ["handle", "offset"],
            "additionalProperties": false
        },
    });
    let title = "Read more of a cut result";
    if version.has_structured() {
        tool["title"] = json!(title);
    }
    if version.has_annotations() {
        tool["annotations"] = json!({
            "title": title,
            "readOnlyHint": true,
            "idempotentHint": true,
            "openWorldHint": false,
        });
    }
    tool
}

/// A tool as MCP lists it, in `version`'s vocabulary; its output schema only if
/// `output_schema` (not under a result budget: a cut result has no structured content).
fn tool_json(t: &Listed, version: Version, output_schema: bool) -> Value {
    let s = &t.summary;
    let mut input = match &s.input_schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // MCP requires an object schema; arguments are always an object anyway.
    input
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let mut tool = json!({
        "name": t.name,
        "description": s.description,
        "inputSchema": input,
    });
    let title = format!("{} on {}", s.name, s.node);
    if version.has_structured() {
        tool["title"] = json!(title);
        // MCP output schemas describe `structuredContent`, which is always an object.
        if let Some(o) = s.output_schema.as_ref().filter(|_| output_schema)
            && o.get("type").and_then(Value::as_str) == Some("object")
        {
            tool["outputSchema"] = o.clone();
        }
    }
    if version.has_annotations() {
        let mut a = json!({ "title": title });
        // Our flags default to false, so all-false means "nothing declared": leave MCP's
        // cautious defaults (not read-only, destructive, not idempotent) in place.
        let h = s.annotations;
        if h != Annotations::NONE {
            a["readOnlyHint"] = json!(h.read_only);
            if !h.read_only {
                a["destructiveHint"] = json!(h.destructive);
            }
            a["idempotentHint"] = json!(h.idempotent);
        }
        tool["annotations"] = a;
    }
    // 2025-11-25's tasks: whether a call may run as one.
    if version == Version::V2025_11_25 {
        tool["execution"] = json!({"taskSupport": super::tasks::task_support(&s.input_schema)});
    }
    tool
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(node: &str, name: &str, annotations: Annotations) -> ToolSummary {
        ToolSummary {
            node: node.into(),
            name: name.into(),
            description: "d".into(),
            input_schema: json!({"properties": {}}),
            output_schema: Some(json!({"type": "object"})),
            annotations,
        }
    }

    #[test]
    fn catalog_is_sorted_and_routes_by_name() {
        let c = Catalog::new(
            3,
            vec![
                summary("b", "t", Annotations::NONE),
                summary("a", "t", Annotations::NONE),
                summary("a", "t", Annotations::NONE),
            ],
            false,
        );
        let names: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a__t", "b__t"]);
        assert_eq!(c.find("b__t").unwrap().summary.node, "b");
        assert!(c.find("b.t").is_none());
    }

    #[test]
    fn the_read_tool_is_listed_in_each_version() {
        let j = read_tool_json(4096, Version::LATEST);
        assert_eq!(j["name"], READ_RESULT_TOOL);
        assert_eq!(j["inputSchema"]["required"], json!(["handle", "offset"]));
        assert_eq!(j["inputSchema"]["properties"]["length"]["minimum"], 1);
        assert!(j["description"].as_str().unwrap().contains("4096"));
        assert_eq!(j["annotations"]["readOnlyHint"], true);
        let j = read_tool_json(4096, Version::V2024_11_05);
        assert!(j.get("annotations").is_none() && j.get("title").is_none());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(17, 50)), Some((17, 50)));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("1-zz"), None);
    }

    #[test]
    fn tools_follow_the_negotiated_version() {
        let ro = Annotations {
            read_only: true,
            destructive: false,
            idempotent: true,
        };
        let t = Listed {
            name: "dev__read".into(),
            summary: summary("dev", "read", ro),
        };
        let j = tool_json(&t, Version::V2025_11_25, true);
        assert_eq!(j["name"], "dev__read");
        assert_eq!(j["title"], "read on dev");
        assert_eq!(j["inputSchema"]["type"], "object");
        assert_eq!(j["outputSchema"], json!({"type": "object"}));
        assert_eq!(
            j["annotations"],
            json!({"title": "read on dev", "readOnlyHint": true, "idempotentHint": true})
        );
        let j = tool_json(&t, Version::V2025_11_25, false);
        assert!(j.get("outputSchema").is_none(), "not under a budget: {j}");
        let j = tool_json(&t, Version::V2025_03_26, true);
        assert!(j.get("title").is_none() && j.get("outputSchema").is_none());
        assert_eq!(j["annotations"]["readOnlyHint"], true);
        let j = tool_json(&t, Version::V2024_11_05, true);
        assert!(j.get("annotations").is_none());

        let w = Annotations {
            read_only: false,
            destructive: true,
            idempotent: false,
        };
        let t = Listed {
            name: "dev__wipe".into(),
            summary: summary("dev", "wipe", w),
        };
        let a = &tool_json(&t, Version::LATEST, true)["annotations"];
        assert_eq!(a["readOnlyHint"], false);
        assert_eq!(a["destructiveHint"], true);
        let t = Listed {
            name: "dev__x".into(),
            summary: summary("dev", "x", Annotations::NONE),
        };
        let a = &tool_json(&t, Version::LATEST, true)["annotations"];
        assert!(a.get("destructiveHint").is_none() && a.get("readOnlyHint").is_none());
    }
}
