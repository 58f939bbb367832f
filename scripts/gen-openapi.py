#!/usr/bin/env python3
"""Writes the gateway's OpenAPI 3.1 document (runtime-smol/src/http/openapi.json, served at
/openapi.json). Edit the routes here, then:

    python3 scripts/gen-openapi.py > runtime-smol/src/http/openapi.json

`runtime-smol/src/http/rest.rs`'s tests hold the document to the routes the server has, and
`cli/tests/http_interop.rs` runs schemathesis against it on a live gateway.
"""
import json
name = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
def err(desc):
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
def ok(desc, schema, ct="application/json"):
    return {"description": desc, "content": {ct: {"schema": schema}}}
auth = {"401": {"$ref": "#/components/responses/Unauthorized"},
        "403": {"$ref": "#/components/responses/Forbidden"},
        "429": {"$ref": "#/components/responses/TooManyConnections"}}
node_p = {"name": "node", "in": "path", "required": True, "description": "A node's id.", "schema": name}
tool_p = {"name": "tool", "in": "path", "required": True, "description": "A tool's name.", "schema": name}
tools_h = {"name": "Toolwire-Tools", "in": "header", "required": False,
   "description": "This request's active tool set: patterns separated by commas, each `node/tool` or `tool` (on any node), "
     "`*` for any run of characters; 1 to 129 bytes each, at most 256. Only the tools one matches are listed, resolved or called; "
     "a call outside it is 403 with code -32006. Absent: every tool (PROTOCOL.md section 6, `tools.scope`).",
   "schema": {"type": "string"}}
bad_set = err("The Toolwire-Tools header is not a valid tool set.")
u32 = 4294967295
doc = {
 "openapi": "3.1.0",
 "info": {"title": "toolwire gateway", "version": "1",
   "description": "The gateway's HTTP face: the nodes and tools connected to it, and calls to those tools. "
     "Every error is the protocol's error object (PROTOCOL.md §8) under `error`, with a fitting HTTP status. "
     "When the gateway has tokens, every route under /v1 and /metrics needs `Authorization: Bearer TOKEN` "
     "of a token that may act as a controller; its ACL applies to calls. "
     "WebSocket peers (nodes and controllers) connect with an upgrade on GET /ws of the same port."},
 "servers": [{"url": "/"}],
 "security": [{}, {"bearer": []}],
 "paths": {
  "/healthz": {"get": {"operationId": "health", "summary": "The process is up.", "security": [],
     "responses": {"200": ok("Up.", {"$ref": "#/components/schemas/Status"}),
                   "429": {"$ref": "#/components/responses/TooManyConnections"}}}},
  "/readyz": {"get": {"operationId": "ready", "summary": "The gateway takes calls (not shutting down).", "security": [],
     "responses": {"200": ok("Ready.", {"$ref": "#/components/schemas/Status"}),
                   "503": ok("Shutting down.", {"$ref": "#/components/schemas/Status"}),
                   "429": {"$ref": "#/components/responses/TooManyConnections"}}}},
  "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document.", "security": [],
     "responses": {"200": ok("The OpenAPI document.", {"type": "object"}),
                   "429": {"$ref": "#/components/responses/TooManyConnections"}}}},
  "/metrics": {"get": {"operationId": "metrics", "summary": "Metrics in the OpenMetrics text format (Prometheus scrapes it).",
     "responses": {"200": ok("The metrics.", {"type": "string"}, "application/openmetrics-text"), **auth}}},
  "/v1/nodes": {"get": {"operationId": "listNodes", "summary": "Nodes connected, by id.",
     "responses": {"200": ok("The nodes.", {"type": "object", "required": ["nodes"], "additionalProperties": False,
         "properties": {"nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}), **auth}}},
  "/v1/nodes/{node}": {"get": {"operationId": "getNode", "summary": "One connected node.", "parameters": [node_p],
     "responses": {"200": ok("The node.", {"$ref": "#/components/schemas/Node"}),
                   "404": err("No such node is connected (-32011)."), **auth}}},
  "/v1/nodes/{node}/tools": {"get": {"operationId": "listNodeTools", "summary": "A node's tools, by name.", "parameters": [node_p, tools_h],
     "responses": {"200": ok("The tools.", {"type": "object", "required": ["tools"], "additionalProperties": False,
         "properties": {"tools": {"type": "array", "items": {"$ref": "#/components/schemas/Tool"}}}}),
                   "400": bad_set,
                   "404": err("No such node is connected (-32011)."), **auth}}},
  "/v1/nodes/{node}/tools/{tool}": {"get": {"operationId": "getTool", "summary": "One tool of a node, with its schemas.", "parameters": [node_p, tool_p, tools_h],
     "responses": {"200": ok("The tool.", {"$ref": "#/components/schemas/Tool"}),
                   "400": bad_set,
                   "404": err("No such node (-32011), or the node has no such tool (-32001)."), **auth}}},
  "/v1/nodes/{node}/tools/{tool}/call": {"post": {"operationId": "callTool",
     "summary": "Calls a tool: the body is its arguments, the answer its result.",
     "description": "The arguments are checked against the tool's input schema, then sent to the node. "
        "With `Accept: text/event-stream` the answer is a stream of server-sent events: `progress` events "
        "(data: a Progress object) while the tool runs, then one `result` (data: the result) or `error` "
        "(data: an Error object); a comment line `: keep-alive` every 15 s while nothing else is sent. "
        "A call the gateway refuses before it reaches the node (unknown node or tool, arguments, token, rate, busy) "
        "gets its error status, streamed or not. Closing the request before the answer cancels the call on the node. "
        "Questions a tool asks (`ask`) are declined (-32013) for calls made over HTTP. "
        "With `Toolwire-Max-Result-Bytes: N` the answer (or the `result` event's data) is a Budgeted envelope: "
        "`{\"value\": result}` when the result's JSON text has at most N bytes, else "
        "`{\"held\": {\"handle\", \"total_bytes\", \"page\", \"next_offset\"}}` with its first page (at most N bytes, "
        "cut at a character boundary); GET /v1/results/{handle} reads the rest.",
     "parameters": [node_p, tool_p,
        {"name": "deadline_ms", "in": "query", "required": False,
         "description": "Time the call may take, in milliseconds (the gateway's default timeout if absent).",
         "schema": {"type": "integer", "minimum": 1, "maximum": 18446744073709551615}},
        tools_h,
        {"name": "Cache-Control", "in": "header", "required": False,
         "description": "`no-cache` or `no-store`: bypass the gateway's result cache (when it has one): the call reaches the node, and its result replaces a kept one.",
         "schema": {"type": "string"}},
        {"name": "Toolwire-Max-Result-Bytes", "in": "header", "required": False,
         "description": "The call's result budget, in bytes (16 to 4294967295, decimal digits): the answer is then a Budgeted envelope, "
           "and a result whose JSON text is longer is held by the gateway (5 minutes by default) for GET /v1/results/{handle}. "
           "Anything else is 400 with code -32602.",
         "schema": {"type": "integer", "minimum": 16, "maximum": u32}}],
     "requestBody": {"required": False, "description": "The arguments: a JSON object (an empty body is `{}`).",
        "content": {"application/json": {"schema": {"type": "object"}}}},
     "responses": {
        "200": {"description": "The tool's result (any JSON value); with Toolwire-Max-Result-Bytes, a Budgeted envelope; or the event stream.",
                "content": {"application/json": {"schema": {"anyOf": [
                                {"description": "The tool's result, any JSON value (without Toolwire-Max-Result-Bytes)."},
                                {"$ref": "#/components/schemas/Budgeted"}]}},
                            "text/event-stream": {"schema": {"type": "string"}}}},
        "400": err("The arguments are not a JSON object (-32602) or break the tool's schema (-32002); a bad deadline_ms, Toolwire-Tools or Toolwire-Max-Result-Bytes (-32602)."),
        "404": err("No such node (-32011), or the node has no such tool (-32001)."),
        "413": err("The arguments exceed the body limit or the node's frame (-32008)."),
        "415": err("The body's Content-Type is not JSON (application/json, a +json type, or application/x-www-form-urlencoded as curl -d sends; the body must be JSON either way) (-32602)."),
        "502": err("The node disconnected (-32009), cancelled the call (-32004), the tool failed (-32014, or the tool's own code), or its result did not fit the gateway's frame (-32008)."),
        "503": err("The node runs as many calls as it allows (-32005); try again."),
        "504": err("The deadline passed (-32003)."),
        "500": err("The gateway failed internally (-32603)."),
        **auth}}},
  "/v1/tools": {"get": {"operationId": "listTools", "summary": "Tools of every node, by node then name, a page at a time.",
     "parameters": [
        {"name": "prefix", "in": "query", "required": False, "description": "Only tools whose name starts with it.", "schema": {"type": "string"}},
        {"name": "node", "in": "query", "required": False, "description": "Only this node's tools.", "schema": {"type": "string"}},
        {"name": "cursor", "in": "query", "required": False, "description": "The next_cursor of the previous page (`node/tool` of its last tool; empty: the first page).", "schema": {"type": "string", "pattern": "^([A-Za-z0-9_.-]{1,64}/[A-Za-z0-9_.-]{1,64})?$"}},
        {"name": "limit", "in": "query", "required": False, "description": "Tools in the page (default 100).", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
        tools_h],
     "responses": {"200": ok("One page.", {"type": "object", "required": ["tools", "next_cursor"], "additionalProperties": False,
          "properties": {"tools": {"type": "array", "items": {"$ref": "#/components/schemas/Tool"}},
                         "next_cursor": {"type": ["string", "null"], "description": "Pass it as cursor for the next page; null on the last."}}}),
          "400": err("A limit out of range, or a cursor this gateway did not give (-32602)."), **auth}}},
  "/v1/tools/{tool}": {"get": {"operationId": "resolveTool", "summary": "The nodes that offer a tool.", "parameters": [tool_p, tools_h],
     "responses": {"200": ok("The nodes, by id.", {"type": "object", "required": ["tool", "nodes"], "additionalProperties": False,
          "properties": {"tool": {"type": "string"}, "nodes": {"type": "array", "minItems": 1, "items": {"type": "string"}}}}),
          "400": bad_set,
          "404": err("No node offers it (-32001)."), **auth}}},
  "/v1/results/{handle}": {"get": {"operationId": "readResult",
     "summary": "A page of a result the gateway holds for a call made with Toolwire-Max-Result-Bytes.",
     "description": "Pages through the result's JSON text: start at offset 0 (or the envelope's next_offset, since its page is the first) "
        "and pass each answer's next_offset until it is null; the pages, joined, are the whole text. "
        "The token's ACL and the request's Toolwire-Tools set must permit the result's tool, as for the call; "
        "results of REST calls can be read by any REST client whose token permits the tool. "
        "A result is held for 5 minutes by default, and may be dropped earlier to make room (by default 32 held results for the REST and in-process callers together, and 64 MiB for all callers).",
     "parameters": [
        {"name": "handle", "in": "path", "required": True, "description": "The envelope's `held.handle`.",
         "schema": {"type": "string", "minLength": 1}},
        {"name": "offset", "in": "query", "required": False,
         "description": "Where the page starts, in bytes of the JSON text: 0 (the default) or a next_offset.",
         "schema": {"type": "integer", "minimum": 0, "maximum": u32}},
        {"name": "length", "in": "query", "required": False,
         "description": "Bytes in the page, at most (cut back to a character boundary, but at least one character); the call's budget if absent.",
         "schema": {"type": "integer", "minimum": 1, "maximum": u32}},
        tools_h],
     "responses": {"200": ok("The page.", {"$ref": "#/components/schemas/ResultPage"}),
          "400": err("A bad offset (not 0 or a next_offset, past the end, not a number) or length, or Toolwire-Tools (-32602)."),
          "410": err("No held result by that handle for this caller: never held, expired, dropped to make room, "
                     "or its tool outside the token's ACL or the tool set (-32015). Call the tool again."),
          **auth}}},
 },
 "components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A gateway token allowed to act as a controller."}},
  "responses": {
    "Unauthorized": err("No `Authorization: Bearer` header, or an unknown token (-32006)."),
    "Forbidden": err("The token may not act as a controller, or its ACL does not allow the tool (-32006)."),
    "TooManyConnections": err("Too many HTTP connections from this address (-32005); the connection is closed."),
  },
  "schemas": {
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {"error": {
        "type": "object", "required": ["code", "message"], "additionalProperties": False,
        "properties": {"code": {"type": "integer", "description": "The protocol's code (PROTOCOL.md §8), or a tool's own (positive)."},
                       "message": {"type": "string"}, "data": {}}}}},
    "Node": {"type": "object", "required": ["id", "tools", "in_flight", "encoding"], "additionalProperties": False, "properties": {
        "id": {"type": "string"}, "tools": {"type": "integer", "minimum": 0}, "in_flight": {"type": "integer", "minimum": 0},
        "encoding": {"type": "string", "enum": ["json", "postcard"]}}},
    "Tool": {"type": "object", "required": ["node", "name", "description", "input_schema", "annotations"], "additionalProperties": False, "properties": {
        "node": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
        "input_schema": {"type": "object", "description": "JSON Schema of the arguments."},
        "output_schema": {"type": "object", "description": "JSON Schema of the result, if the tool declares one."},
        "annotations": {"type": "object", "required": ["read_only", "destructive", "idempotent"], "additionalProperties": False, "properties": {
            "read_only": {"type": "boolean"}, "destructive": {"type": "boolean"}, "idempotent": {"type": "boolean"}}}}},
    "Budgeted": {"description": "A call's answer under a result budget: exactly one of `value` and `held`.",
        "type": "object", "additionalProperties": False,
        "oneOf": [{"required": ["value"]}, {"required": ["held"]}],
        "properties": {
          "value": {"description": "The result, whole (its JSON text fits the budget)."},
          "held": {"type": "object", "required": ["handle", "total_bytes", "page", "next_offset"], "additionalProperties": False, "properties": {
              "handle": {"type": "string", "description": "For GET /v1/results/{handle}."},
              "total_bytes": {"type": "integer", "minimum": 0, "description": "Bytes of the result's whole JSON text."},
              "page": {"type": "string", "description": "The text's first bytes, at most the budget, cut at a character boundary."},
              "next_offset": {"type": "integer", "minimum": 0, "description": "The offset to read on from."}}}}},
    "ResultPage": {"type": "object", "required": ["page", "total_bytes", "next_offset"], "additionalProperties": False, "properties": {
        "page": {"type": "string", "description": "The text from the offset."},
        "total_bytes": {"type": "integer", "minimum": 0, "description": "Bytes of the whole JSON text."},
        "next_offset": {"type": ["integer", "null"], "minimum": 0, "description": "Where the next page starts; null after the last."}}},
    "Progress": {"type": "object", "required": ["progress"], "properties": {
        "progress": {"type": "integer", "minimum": 0}, "total": {"type": ["integer", "null"]},
        "message": {"type": ["string", "null"]}, "partial": {}}},
  }}}
print(json.dumps(doc, indent=1))
