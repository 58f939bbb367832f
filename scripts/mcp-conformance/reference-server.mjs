// A reference MCP server (Streamable HTTP, protocol 2025-11-25) for checking
// scripts/mcp-conformance.sh before the gateway's /mcp exists, and a worked
// example of what each conformance scenario asks of a server: the tool names,
// schemas and results below are the ones the suite calls and checks.
//
//   node reference-server.mjs [--host 127.0.0.1] [--port 0]
//
// Prints "listening http://HOST:PORT/mcp" once ready (port 0 picks a free one)
// and serves until killed. Built on the low-level Server of
// @modelcontextprotocol/sdk so that input schemas go out byte for byte.
// Offers tools, logging, progress, sampling and elicitation only: no resources,
// prompts or completions, like a tool gateway.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  ListToolsRequestSchema,
  SetLevelRequestSchema,
  isInitializeRequest,
} from '@modelcontextprotocol/sdk/types.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const HOST = opt('--host', '127.0.0.1');
const PORT = Number(opt('--port', '0'));

// 1x1 PNG and a WAV header with no samples: the smallest valid media.
const PNG_1X1 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV_EMPTY = (() => {
  const b = Buffer.alloc(44);
  b.write('RIFF', 0);
  b.writeUInt32LE(36, 4);
  b.write('WAVE', 8);
  b.write('fmt ', 12);
  b.writeUInt32LE(16, 16); // fmt chunk size
  b.writeUInt16LE(1, 20); // PCM
  b.writeUInt16LE(1, 22); // mono
  b.writeUInt32LE(8000, 24); // sample rate
  b.writeUInt32LE(16000, 28); // byte rate
  b.writeUInt16LE(2, 32); // block align
  b.writeUInt16LE(16, 34); // bits per sample
  b.write('data', 36);
  b.writeUInt32LE(0, 40);
  return b.toString('base64');
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const noArgs = { type: 'object', properties: {} };

// The tools the conformance scenarios call, by name.
const TOOLS = [
  {
    name: 'test_simple_text', // tools-call-simple-text
    description: 'Returns a simple text block',
    inputSchema: noArgs,
    run: async () => text('This is a simple text response for testing.'),
  },
  {
    name: 'test_image_content', // tools-call-image
    description: 'Returns a 1x1 PNG image block',
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: 'image', data: PNG_1X1, mimeType: 'image/png' }] }),
  },
  {
    name: 'test_audio_content', // tools-call-audio (mimeType must be audio/wav)
    description: 'Returns a WAV audio block',
    inputSchema: noArgs,
    run: async () => ({ content: [{ type: 'audio', data: WAV_EMPTY, mimeType: 'audio/wav' }] }),
  },
  {
    name: 'test_embedded_resource', // tools-call-embedded-resource
    description: 'Returns an embedded text resource',
    inputSchema: noArgs,
    run: async () => ({
      content: [
        {
          type: 'resource',
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
    }),
  },
  {
    name: 'test_multiple_content_types', // tools-call-mixed-content
    description: 'Returns text, image and resource blocks',
    inputSchema: noArgs,
    run: async () => ({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG_1X1, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ test: 'data', value: 123 }),
          },
        },
      ],
    }),
  },
  {
    name: 'test_tool_with_logging', // tools-call-with-logging: 3 notifications/message
    description: 'Sends three info log messages while it runs',
    inputSchema: noArgs,
    run: async (_a, extra, session) => {
      for (const [i, msg] of ['Tool execution started', 'Tool processing data', 'Tool execution completed'].entries()) {
        if (i > 0) await sleep(50);
        await session.log(extra, 'info', msg);
      }
      return text('Tool with logging executed successfully');
    },
  },
  {
    name: 'test_error_handling', // tools-call-error: a result with isError, not a JSON-RPC error
    description: 'Always fails',
    inputSchema: noArgs,
    run: async () => ({
      isError: true,
      content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }],
    }),
  },
  {
    name: 'test_tool_with_progress', // tools-call-with-progress: 0/100, 50/100, 100/100
    description: 'Reports progress 0, 50, 100 of 100',
    inputSchema: noArgs,
    run: async (_a, extra) => {
      const token = extra._meta?.progressToken;
      for (const p of [0, 50, 100]) {
        if (p > 0) await sleep(50);
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: p, total: 100 },
          });
        }
      }
      return text('Tool with progress executed successfully');
    },
  },
  {
    name: 'test_sampling', // tools-call-sampling: sampling/createMessage to the client
    description: 'Asks the client to sample an LLM',
    inputSchema: {
      type: 'object',
      properties: { prompt: { type: 'string', description: 'The prompt to send to the LLM' } },
      required: ['prompt'],
    },
    run: async (a, extra) => {
      const r = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: { messages: [{ role: 'user', content: { type: 'text', text: String(a.prompt ?? '') } }], maxTokens: 100 },
        },
        CreateMessageResultSchema,
      );
      const out = r.content?.type === 'text' ? r.content.text : JSON.stringify(r.content);
      return text(`LLM response: ${out}`);
    },
  },
  {
    name: 'test_elicitation', // tools-call-elicitation: elicitation/create to the client
    description: 'Asks the user for a username and email',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string', description: 'The message to show the user' } },
      required: ['message'],
    },
    run: async (a, extra) => {
      const r = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message: String(a.message ?? ''),
            requestedSchema: {
              type: 'object',
              properties: {
                username: { type: 'string', description: "User's response" },
                email: { type: 'string', description: "User's email address" },
              },
              required: ['username', 'email'],
            },
          },
        },
        ElicitResultSchema,
      );
      return text(`User response: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
    },
  },
  {
    name: 'test_elicitation_sep1034_defaults', // elicitation-sep1034-defaults
    description: 'Elicits with a default for every primitive type',
    inputSchema: noArgs,
    run: async (_a, extra) => {
      const r = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message: 'Please review and update the form fields with defaults',
            requestedSchema: {
              type: 'object',
              properties: {
                name: { type: 'string', description: 'User name', default: 'John Doe' },
                age: { type: 'integer', description: 'User age', default: 30 },
                score: { type: 'number', description: 'User score', default: 95.5 },
                status: {
                  type: 'string',
                  description: 'User status',
                  enum: ['active', 'inactive', 'pending'],
                  default: 'active',
                },
                verified: { type: 'boolean', description: 'Verification status', default: true },
              },
              required: [],
            },
          },
        },
        ElicitResultSchema,
      );
      return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
    },
  },
  {
    name: 'test_elicitation_sep1330_enums', // elicitation-sep1330-enums: the five enum shapes
    description: 'Elicits with every enum schema variant',
    inputSchema: noArgs,
    run: async (_a, extra) => {
      const r = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message: 'Please pick from the enum fields',
            requestedSchema: {
              type: 'object',
              properties: {
                untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
                titledSingle: {
                  type: 'string',
                  oneOf: [
                    { const: 'value1', title: 'First Option' },
                    { const: 'value2', title: 'Second Option' },
                    { const: 'value3', title: 'Third Option' },
                  ],
                },
                legacyEnum: {
                  type: 'string',
                  enum: ['opt1', 'opt2', 'opt3'],
                  enumNames: ['Option One', 'Option Two', 'Option Three'],
                },
                untitledMulti: {
                  type: 'array',
                  items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
                },
                titledMulti: {
                  type: 'array',
                  items: {
                    anyOf: [
                      { const: 'value1', title: 'First Choice' },
                      { const: 'value2', title: 'Second Choice' },
                      { const: 'value3', title: 'Third Choice' },
                    ],
                  },
                },
              },
              required: [],
            },
          },
        },
        ElicitResultSchema,
      );
      return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
    },
  },
  {
    name: 'json_schema_2020_12_tool', // json-schema-2020-12: the schema must be listed unchanged
    description: 'Tool with JSON Schema 2020-12 features',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: {
        address: {
          $anchor: 'addressDef',
          type: 'object',
          properties: { street: { type: 'string' }, city: { type: 'string' } },
        },
      },
      properties: {
        name: { type: 'string' },
        address: { $ref: '#/$defs/address' },
        contactMethod: { type: 'string', enum: ['phone', 'email'] },
        phone: { type: 'string' },
        email: { type: 'string' },
      },
      allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
      if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
      then: { required: ['phone'] },
      else: { required: ['email'] },
      additionalProperties: false,
    },
    run: async (a) => text(`Received: ${JSON.stringify(a)}`),
  },
  {
    name: 'test_reconnection', // server-sse-polling (SEP-1699): close the POST stream, answer after
    description: 'Closes its SSE stream mid-call; the result comes on the resumed stream',
    inputSchema: noArgs,
    run: async (_a, extra) => {
      await sleep(50);
      extra.closeSSEStream?.();
      await sleep(300);
      return text('Reconnection test completed');
    },
  },
];
const BY_NAME = new Map(TOOLS.map((t) => [t.name, t]));

// logging/setLevel filters notifications/message by severity.
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

function newSession() {
  const server = new Server(
    { name: 'toolwire-conformance-reference', version: '1.0.0' },
    { capabilities: { tools: { listChanged: false }, logging: {} } },
  );
  const session = {
    level: 'info',
    async log(extra, level, data) {
      if (LEVELS.indexOf(level) < LEVELS.indexOf(this.level)) return;
      await extra.sendNotification({ method: 'notifications/message', params: { level, logger: 'reference', data } });
    },
  };
  server.setRequestHandler(SetLevelRequestSchema, async (req) => {
    session.level = req.params.level;
    return {};
  });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: TOOLS.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const tool = BY_NAME.get(req.params.name);
    if (!tool) {
      return { isError: true, content: [{ type: 'text', text: `Unknown tool: ${req.params.name}` }] };
    }
    try {
      return await tool.run(req.params.arguments ?? {}, extra, session);
    } catch (e) {
      return { isError: true, content: [{ type: 'text', text: String(e?.message ?? e) }] };
    }
  });
  return server;
}

// Events kept per stream so that a client reconnecting with Last-Event-ID
// gets what it missed (and so that POST streams start with a priming event).
class MemoryEventStore {
  constructor() {
    this.events = new Map(); // eventId -> { streamId, message }
    this.n = 0;
  }
  async storeEvent(streamId, message) {
    const id = `${streamId}_${++this.n}`;
    this.events.set(id, { streamId, message });
    return id;
  }
  async getStreamIdForEventId(eventId) {
    return this.events.get(eventId)?.streamId;
  }
  async replayEventsAfter(lastEventId, { send }) {
    const last = this.events.get(lastEventId);
    if (!last) return '';
    let after = false;
    for (const [id, ev] of this.events) {
      if (id === lastEventId) {
        after = true;
        continue;
      }
      if (after && ev.streamId === last.streamId && ev.message) await send(id, ev.message);
    }
    return last.streamId;
  }
}

// DNS rebinding protection: a local server answers only to a local Host and
// (when a browser sends one) a local Origin.
const LOCAL = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
function localHost(hostHeader) {
  if (!hostHeader) return false;
  try {
    return LOCAL.has(new URL(`http://${hostHeader}`).hostname);
  } catch {
    return false;
  }
}
function localOrigin(origin) {
  if (origin === undefined) return true;
  try {
    return LOCAL.has(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function reject(res, status, code, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }));
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString('utf8');
  return raw ? JSON.parse(raw) : undefined;
}

const sessions = new Map(); // Mcp-Session-Id -> transport

const httpServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname !== '/mcp') return reject(res, 404, -32601, 'Not found');
    if (!localHost(req.headers.host) || !localOrigin(req.headers.origin)) {
      return reject(res, 403, -32000, 'Forbidden: non-local Host or Origin');
    }
    const sid = req.headers['mcp-session-id'];
    if (req.method === 'POST') {
      let body;
      try {
        body = await readJson(req);
      } catch {
        return reject(res, 400, -32700, 'Parse error');
      }
      if (sid !== undefined) {
        const t = sessions.get(sid);
        if (!t) return reject(res, 404, -32001, 'Session not found');
        return await t.handleRequest(req, res, body);
      }
      if (!isInitializeRequest(body)) return reject(res, 400, -32000, 'Bad Request: no Mcp-Session-Id');
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: new MemoryEventStore(),
        retryInterval: 500,
        onsessioninitialized: (id) => sessions.set(id, transport),
        onsessionclosed: (id) => sessions.delete(id),
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await newSession().connect(transport);
      return await transport.handleRequest(req, res, body);
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      if (sid === undefined) return reject(res, 400, -32000, 'Bad Request: no Mcp-Session-Id');
      const t = sessions.get(sid);
      if (!t) return reject(res, 404, -32001, 'Session not found');
      return await t.handleRequest(req, res);
    }
    res.setHeader('allow', 'GET, POST, DELETE');
    return reject(res, 405, -32000, 'Method not allowed');
  } catch (e) {
    if (!res.headersSent) reject(res, 500, -32603, `Internal error: ${e?.message ?? e}`);
    else res.end();
  }
});

httpServer.listen(PORT, HOST, () => {
  const { port } = httpServer.address();
  const host = HOST.includes(':') ? `[${HOST}]` : HOST;
  console.log(`listening http://${host}:${port}/mcp`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    httpServer.close();
    process.exit(0);
  });
}
