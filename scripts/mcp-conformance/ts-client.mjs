// Drives toolwire's MCP server with the official TypeScript SDK (@modelcontextprotocol/sdk, as
// pinned in package.json) as a real client, over stdio (`toolwire mcp`) or Streamable HTTP (the
// gateway's /mcp). Run by cli/tests/mcp.rs:
//
//   node ts-client.mjs stdio TOOLWIRE_BINARY GATEWAY_URL
//   node ts-client.mjs http MCP_URL
//
// The gateway has nodes `dev-a` (the simulated device) and `lab` (59 tools, `ask_name` and
// `ask_valve` among them). A line `@@ add` asks the Rust test to connect node `dev-b`; it
// answers `ok` on stdin. Every check prints `ok: …`; the last line is PASS, exit status 0.
import readline from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateTaskResultSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

const [mode, a, b] = process.argv.slice(2);
const check = (cond, what) => {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
};
const within = (ms, p, what) =>
  Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error(`timed out: ${what}`)), ms))]);

const lines = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : answers.push(l)));
const harness = (req) => {
  console.log(`@@ ${req}`);
  return within(20000, new Promise((ok) => (answers.length ? ok(answers.shift()) : waiting.push(ok))), req);
};

const transport =
  mode === 'stdio'
    ? new StdioClientTransport({ command: a, args: ['mcp', '--gateway', b], stderr: 'inherit' })
    : new StreamableHTTPClientTransport(new URL(a));
console.log(`transport: ${mode}`);

const client = new Client(
  { name: 'toolwire-ts-test', version: '0' },
  { capabilities: { elicitation: {} } },
);
let elicited = [];
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  elicited.push(req.params);
  const props = req.params.requestedSchema.properties;
  if ('allow' in props) return { action: 'decline' };
  return { action: 'accept', content: { name: 'Ada' } };
});
let changed = 0;
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
  changed += 1;
});
const gatewayLines = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
  if (n.params.logger === 'gateway') gatewayLines.push(n.params.data);
});

await within(10000, client.connect(transport), 'connect');
check(client.getServerVersion().name === 'toolwire', 'server info');
check(client.getServerCapabilities().tools?.listChanged === true, 'tools capability with listChanged');

// Listing with cursors: 64 tools, 50 a page.
const listAll = async () => {
  const tools = [];
  const pages = [];
  let cursor;
  for (let i = 0; i < 10; i++) {
    const r = await within(10000, client.listTools(cursor ? { cursor } : {}), 'list');
    tools.push(...r.tools);
    pages.push(r.tools.length);
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  return { tools, pages };
};
const { tools, pages } = await listAll();
check(JSON.stringify(pages) === '[50,14]', `paged 50 at a time: ${pages}`);
const names = new Set(tools.map((t) => t.name));
check(names.size === 64 && names.has('dev-a__read_sensor') && names.has('lab__t07'), 'every tool, once');

// A call with structured content.
const r = await within(10000, client.callTool({ name: 'dev-a__read_sensor', arguments: { channel: 2 } }), 'call');
check(!r.isError && r.structuredContent.channel === 2, 'read_sensor succeeds with structured content');

// Progress, before the result.
const seen = [];
const s = await within(
  10000,
  client.callTool({ name: 'dev-a__sample', arguments: { channel: 1, count: 4, interval_ms: 20 } }, undefined, {
    onprogress: (p) => seen.push(p.progress),
  }),
  'sample',
);
check(JSON.stringify(seen) === '[1,2,3,4]' && s.structuredContent.count === 4, `four progress reports: ${seen}`);

// Cancel: abort a slow call after its first progress; the server stops it, and goes on.
const ac = new AbortController();
let first;
const started = new Promise((ok) => (first = ok));
const slow = client.callTool(
  { name: 'dev-a__sample', arguments: { channel: 0, count: 100, interval_ms: 500 } },
  undefined,
  { signal: ac.signal, onprogress: () => first() },
);
await within(10000, started, 'the slow call starts');
ac.abort();
let aborted = false;
try {
  await slow;
} catch (e) {
  aborted = true;
}
check(aborted, 'the aborted call rejects');
await within(5000, client.ping(), 'ping after cancel');
check(true, 'ping after cancel');

// Elicitation: an input ask answered, a permission declined.
const n = await within(10000, client.callTool({ name: 'lab__ask_name', arguments: {} }), 'ask_name');
check(n.content[0].text === 'hello Ada', `input ask answered through elicitation: ${n.content[0].text}`);
const v = await within(10000, client.callTool({ name: 'lab__ask_valve', arguments: {} }), 'ask_valve');
check(v.structuredContent.opened === false, 'permission declined through elicitation');
check(elicited.length === 2 && elicited[0].message === 'Who is it?', 'two elicitations, with the prompt');

// Errors are results; an unknown tool is a protocol error.
const f = await within(10000, client.callTool({ name: 'lab__fail', arguments: {} }), 'fail');
check(f.isError === true, 'a failing tool is isError');
let unknown = false;
try {
  await client.callTool({ name: 'nope__nope', arguments: {} });
} catch (e) {
  unknown = String(e).includes('-32602') || String(e).includes('Unknown tool');
}
check(unknown, 'an unknown tool is refused');

// Tasks (2025-11-25, experimental): a call run as a task, polled to its result; another
// listed, then cancelled.
check(client.getServerCapabilities().tasks?.requests?.tools?.call !== undefined, 'tasks capability');
check(
  tools.find((t) => t.name === 'dev-a__sample')?.execution?.taskSupport === 'optional',
  'tools say they may run as tasks',
);
const kinds = [];
let taskResult;
const stream = client.experimental.tasks.callToolStream(
  { name: 'dev-a__sample', arguments: { channel: 3, count: 3, interval_ms: 200 } },
  undefined,
  { task: { ttl: 60000 } },
);
for await (const m of stream) {
  kinds.push(m.type);
  if (m.type === 'error') throw m.error;
  if (m.type === 'result') taskResult = m.result;
}
check(
  kinds[0] === 'taskCreated' && kinds.includes('taskStatus') && kinds.at(-1) === 'result',
  `a task created, polled, and its result: ${kinds.join(',')}`,
);
check(taskResult.structuredContent.count === 3, "the task's result is the call's");
const created = await within(
  10000,
  client.request(
    {
      method: 'tools/call',
      params: { name: 'dev-a__sample', arguments: { channel: 0, count: 100, interval_ms: 500 }, task: { ttl: 60000 } },
    },
    CreateTaskResultSchema,
  ),
  'a long task',
);
const taskId = created.task.taskId;
check(created.task.status === 'working', 'a long call is a working task');
const listedTasks = await within(10000, client.experimental.tasks.listTasks(), 'tasks/list');
check(
  listedTasks.tasks.some((t) => t.taskId === taskId && t.status === 'working'),
  'tasks/list shows it working',
);
const cancelled = await within(10000, client.experimental.tasks.cancelTask(taskId), 'tasks/cancel');
check(cancelled.status === 'cancelled', 'tasks/cancel cancels it');
check(
  (await within(10000, client.experimental.tasks.getTask(taskId), 'tasks/get')).status === 'cancelled',
  'and it stays cancelled',
);
check((await harness('tasks')) === 'ok', 'the cancelled task stopped on the node');

// list_changed when a node comes.
check((await harness('add')) === 'ok', 'dev-b connected');
for (let i = 0; i < 100 && changed === 0; i++) await new Promise((ok) => setTimeout(ok, 100));
check(changed > 0, 'notifications/tools/list_changed received');
check(
  gatewayLines.some((d) => d.nodes?.includes('dev-b') && d.message.includes('dev-b')),
  `the gateway says so in a log line: ${JSON.stringify(gatewayLines)}`,
);
const after = await listAll();
check(after.tools.length === 69, `dev-b's tools listed: ${after.tools.length}`);

await client.close();
lines.close();
console.log('PASS');
process.exit(0);
