// Drives the gateway's /mcp at MCP revision 2026-07-28 (stateless) with the official TypeScript
// SDK v2 (@modelcontextprotocol/client, as pinned in package.json) as a real client. Run by
// cli/tests/mcp_2026.rs with the Node 22 of node_modules/node:
//
//   node ts-client-2026.mjs MCP_URL
//
// The gateway lists tools 5 a page and has the node `lab` (18 tools, see mcp_2026.rs). The
// client pins 2026-07-28 (`versionNegotiation: { mode: { pin } }`): connect() sends
// server/discover, no initialize, and every request carries its `_meta` envelope. Input
// requests of `input_required` results go to the handlers set with setRequestHandler, and the
// SDK retries the call with the answers. A second client without those capabilities gets
// -32021 for a tool that needs sampling.
//
// A line `@@ REQUEST` asks the Rust test to look at or change the gateway (`in_flight lab`,
// `idle lab`, `add extra`); it answers one line on stdin. Every check prints `ok: …`;
// `http: {...}` sums up every HTTP request the SDK made; the last line is PASS, exit status 0.
import readline from 'node:readline';
import {
  Client,
  LOG_LEVEL_META_KEY,
  ProtocolError,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';

const VERSION = '2026-07-28';
const [url] = process.argv.slice(2);
const LAB_TOOLS = [
  ...Array.from({ length: 8 }, (_, i) => `lab__t0${i}`),
  ...['greet', 'measure', 'count', 'slow', 'fail', 'ask_name', 'ask_valve', 'ask_model', 'ask_roots', 'ask_twice', 'ask_together'].map(
    (t) => `lab__${t}`,
  ),
].sort();

const check = (cond, what) => {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
};
const within = (ms, p, what) => {
  let timer;
  const timeout = new Promise((_, no) => (timer = setTimeout(() => no(new Error(`timed out: ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
};
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
// The error a promise rejects with, or a failed check if it resolves.
const rejection = async (p, what) => {
  try {
    await within(10000, p, what);
  } catch (e) {
    return e;
  }
  throw new Error(`FAILED: ${what} was not refused`);
};

const lines = readline.createInterface({ input: process.stdin });
const answers = [];
const waiting = [];
lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : answers.push(l)));
const harness = (req) => {
  console.log(`@@ ${req}`);
  return within(20000, new Promise((ok) => (answers.length ? ok(answers.shift()) : waiting.push(ok))), req);
};

// Every HTTP request the SDK makes, through its `fetch` option.
const http = [];
let sessionIds = 0;
const recordingFetch = async (input, init = {}) => {
  const headers = new Headers(init.headers);
  let body;
  try {
    body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
  } catch {
    body = undefined;
  }
  const entry = { method: init.method ?? 'GET', headers, body };
  http.push(entry);
  if (headers.has('mcp-session-id')) sessionIds += 1;
  const response = await fetch(input, init);
  entry.status = response.status;
  if (response.headers.has('mcp-session-id')) sessionIds += 1;
  return response;
};
const posts = () => http.filter((r) => r.method === 'POST');
const summary = () => {
  const p = posts();
  return {
    posts: p.length,
    other_methods: [...new Set(http.filter((r) => r.method !== 'POST').map((r) => r.method))].sort(),
    versions: [...new Set(p.map((r) => r.headers.get('mcp-protocol-version') ?? 'none'))].sort(),
    session_ids: sessionIds,
    // Requests only: a notification is not routed by its headers.
    method_header_mismatches: p.filter((r) => r.body?.id !== undefined && r.headers.get('mcp-method') !== r.body?.method)
      .length,
    // Notifications the SDK posted, with the status they were answered.
    notifications: p.filter((r) => r.body?.id === undefined).map((r) => `${r.body?.method} ${r.status}`),
    methods: [...new Set(p.map((r) => r.body?.method))],
    retries_with_request_state: p.filter((r) => r.body?.params?.requestState !== undefined).length,
  };
};

const client = new Client(
  { name: 'toolwire-ts-2026-test', version: '0' },
  {
    capabilities: { elicitation: { form: {} }, sampling: {}, roots: {} },
    versionNegotiation: { mode: { pin: VERSION } },
  },
);
const elicited = [];
client.setRequestHandler('elicitation/create', async (req, ctx) => {
  const props = Object.keys(req.params.requestedSchema.properties).sort();
  elicited.push([ctx.mcpReq.id, req.params.message, props]);
  if (req.params.message === 'Open the valve?') return { action: 'decline' };
  if (props.includes('allow')) return { action: 'accept', content: { allow: true } };
  if (props.includes('colour')) return { action: 'accept', content: { colour: 'teal' } };
  return { action: 'accept', content: { name: 'Ada' } };
});
const sampled = [];
client.setRequestHandler('sampling/createMessage', async (req, ctx) => {
  const p = req.params;
  sampled.push([ctx.mcpReq.id, p.messages[0].content.text, p.maxTokens, p.systemPrompt]);
  return { model: 'toolwire-test-model', role: 'assistant', content: { type: 'text', text: '42' } };
});
const rooted = [];
client.setRequestHandler('roots/list', async (_req, ctx) => {
  rooted.push(ctx.mcpReq.id);
  return { roots: [{ uri: 'file:///work/project', name: 'project' }] };
});
const logs = [];
client.setNotificationHandler('notifications/message', (n) => {
  logs.push([n.params.level, n.params.logger, n.params.data]);
});
let changed = 0;
client.setNotificationHandler('notifications/tools/list_changed', () => {
  changed += 1;
});
client.onerror = (e) => console.log(`client error: ${e}`);

const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch });

// --- connect: server/discover at the pinned version, nothing else
await within(15000, client.connect(transport), 'connect');
const version = client.getNegotiatedProtocolVersion();
console.log(`negotiated protocol version ${version}`);
check(version === VERSION && client.getProtocolEra() === 'modern', `the modern era at ${VERSION}`);
check(http.length === 1 && http[0].body.method === 'server/discover', 'connect sent server/discover only');
const meta = http[0].body.params._meta;
check(meta['io.modelcontextprotocol/protocolVersion'] === VERSION, 'the probe says its version in _meta');
const sentCaps = meta['io.modelcontextprotocol/clientCapabilities'];
check(sentCaps.elicitation && sentCaps.sampling && sentCaps.roots, `and its capabilities: ${JSON.stringify(sentCaps)}`);
const discovered = client.getDiscoverResult();
check(JSON.stringify(discovered.supportedVersions) === `["${VERSION}"]`, 'discover: supportedVersions');
check(client.getServerVersion()?.name === 'toolwire', 'server info in _meta');
check(client.getServerCapabilities().tools?.listChanged === true, 'tools capability with listChanged');
check((client.getInstructions() ?? '').includes('toolwire gateway'), 'instructions');

// --- tools/list: the SDK walks the pages; then one page by its cursor
const before = posts().length;
const { tools } = await within(10000, client.listTools(), 'listTools');
const walked = posts().slice(before).filter((r) => r.body.method === 'tools/list');
const cursors = walked.map((r) => r.body.params?.cursor);
console.log(`${tools.length} tools in ${walked.length} pages, cursors ${JSON.stringify(cursors)}`);
check(walked.length === 4 && cursors[0] === undefined && new Set(cursors.slice(1)).size === 3, 'four pages, three cursors');
const names = tools.map((t) => t.name);
check(JSON.stringify([...names].sort()) === JSON.stringify(LAB_TOOLS), 'every tool, once, named node__tool');
const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
check(byName.lab__greet.inputSchema.required[0] === 'name' && byName.lab__greet.title === 'greet on lab', 'input schema and title');
check(byName.lab__measure.outputSchema.properties.volts.type === 'number', 'output schema passed through');
check(byName.lab__measure.annotations.readOnlyHint === true, 'read-only hint');
const page = await within(10000, client.listTools({ cursor: cursors[1] }), 'one page');
check(page.tools.length === 5 && typeof page.nextCursor === 'string', 'a page by its cursor: 5 tools and a next cursor');
check(JSON.stringify(page.tools.map((t) => t.name)) === JSON.stringify(names.slice(5, 10)), 'the second page again');
const bogus = await rejection(client.listTools({ cursor: 'bogus' }), 'a bogus cursor');
check(bogus instanceof ProtocolError && bogus.code === -32602, `a bogus cursor is -32602 (${bogus.message})`);

// --- calls: text, structured content, routing
const text = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join(' ');
let r = await within(10000, client.callTool({ name: 'lab__greet', arguments: { name: 'Grace' } }), 'greet');
check(!r.isError && text(r) === 'hello, Grace' && r.structuredContent === undefined, `a string result is its text: ${text(r)}`);
r = await within(10000, client.callTool({ name: 'lab__measure', arguments: {} }), 'measure');
check(r.structuredContent?.volts === 3.3 && JSON.parse(text(r)).volts === 3.3, 'structured content and the same JSON as text');
r = await within(10000, client.callTool({ name: 'lab__t03', arguments: { x: 7 } }), 't03');
check(JSON.stringify(r.structuredContent) === '{"tool":"t03","x":7}', 'calls route to the right tool');

// --- progress and log lines on the call's stream (logLevel info: the debug line stays out)
const seen = [];
r = await within(
  10000,
  client.callTool(
    { name: 'lab__count', arguments: { n: 4 }, _meta: { [LOG_LEVEL_META_KEY]: 'info' } },
    { onprogress: (p) => seen.push([p.progress, p.total, p.message]) },
  ),
  'count',
);
console.log(`progress: ${JSON.stringify(seen)}; logs: ${JSON.stringify(logs)}`);
check(JSON.stringify(seen) === JSON.stringify([1, 2, 3, 4].map((i) => [i, 4, `step ${i}`])), 'four progress notifications');
check(r.structuredContent?.count === 4, 'the result after its progress');
check(JSON.stringify(logs) === '[["info","lab/count","counting to 4"]]', 'the info line, not the debug one');
r = await within(10000, client.callTool({ name: 'lab__count', arguments: { n: 1 } }), 'count without logLevel');
check(r.structuredContent?.count === 1 && logs.length === 1, 'no log lines for a request without logLevel');

// --- failures
r = await within(10000, client.callTool({ name: 'lab__fail', arguments: {} }), 'fail');
check(r.isError === true && text(r).includes('boom'), `a failing tool is isError: ${text(r)}`);
const unknown = await rejection(client.callTool({ name: 'nope__nope', arguments: {} }), 'an unknown tool');
check(unknown instanceof ProtocolError && unknown.code === -32602, `an unknown tool is -32602 (${unknown.message})`);

// --- asks: input_required results, answered by the handlers, retried by the SDK
r = await within(10000, client.callTool({ name: 'lab__ask_name', arguments: {} }), 'ask_name');
check(text(r) === 'hello Ada', `an input ask answered through elicitation: ${text(r)}`);
check(JSON.stringify(elicited) === '[["ask-1","Who is it?",["name"]]]', `one elicitation, key ask-1: ${JSON.stringify(elicited)}`);
r = await within(10000, client.callTool({ name: 'lab__ask_valve', arguments: {} }), 'ask_valve');
check(r.structuredContent?.opened === false, 'a permission declined');
check(JSON.stringify(elicited[1].slice(1)) === '["Open the valve?",["allow"]]', 'asked as a yes/no field');
r = await within(10000, client.callTool({ name: 'lab__ask_model', arguments: {} }), 'ask_model');
check(text(r) === 'the model said: 42', `a sample answered by the sampling handler: ${text(r)}`);
check(JSON.stringify(sampled) === '[["sum","What is 6 times 7?",64,"Answer with a number."]]', `the sampling request: ${JSON.stringify(sampled)}`);
r = await within(10000, client.callTool({ name: 'lab__ask_roots', arguments: {} }), 'ask_roots');
check(JSON.stringify(r.structuredContent) === '{"roots":[{"name":"project","uri":"file:///work/project"}]}', `roots answered: ${JSON.stringify(r.structuredContent)}`);
check(JSON.stringify(rooted) === '["roots"]', 'one roots request, key roots');
r = await within(15000, client.callTool({ name: 'lab__ask_twice', arguments: {} }), 'ask_twice');
check(JSON.stringify(r.structuredContent) === '{"colour":"teal","painted":true}', `two rounds: ${JSON.stringify(r.structuredContent)}`);
check(JSON.stringify(elicited.slice(2).map((e) => e[0])) === '["colour","ask-2"]', 'one input request a round');
r = await within(15000, client.callTool({ name: 'lab__ask_together', arguments: {} }), 'ask_together');
check(JSON.stringify(r.structuredContent) === '{"colour":"teal","roots":[{"name":"project","uri":"file:///work/project"}]}', `two asks at once, one round: ${JSON.stringify(r.structuredContent)}`);
check(JSON.stringify(elicited.slice(4).map((e) => e[0])) === '["shade"]' && JSON.stringify(rooted.slice(1)) === '["roots"]', `both input requests of the round answered: ${JSON.stringify(elicited.slice(4))} ${JSON.stringify(rooted)}`);

// --- a client without the capabilities: the ask is declined and the call is -32021
{
  const bare = new Client({ name: 'toolwire-ts-2026-bare', version: '0' }, { versionNegotiation: { mode: { pin: VERSION } } });
  await within(15000, bare.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch })), 'bare connect');
  const e = await rejection(bare.callTool({ name: 'lab__ask_model', arguments: {} }), 'ask_model without sampling');
  console.log(`without sampling: ${e.constructor.name} ${e.code} ${JSON.stringify(e.data)}`);
  check(e.code === -32021 && JSON.stringify(e.data?.requiredCapabilities) === '{"sampling":{}}', 'a missing capability is -32021 naming it');
  await bare.close();
}

// --- cancel: aborting the call closes its stream, which cancels it on the node
const ac = new AbortController();
let first;
const started = new Promise((ok) => (first = ok));
const slow = client.callTool({ name: 'lab__slow', arguments: {} }, { signal: ac.signal, onprogress: () => first() });
await within(10000, started, 'the slow call starts');
check((await harness('in_flight lab')) === '1', 'the slow call runs on lab');
r = await within(10000, client.callTool({ name: 'lab__t01', arguments: { x: 1 } }), 't01');
check(r.structuredContent?.tool === 't01', 'another call meanwhile');
ac.abort();
const aborted = await rejection(slow, 'the aborted call');
check(aborted !== undefined, `the aborted call rejects: ${aborted.message}`);
check((await harness('idle lab')) === '0', 'the cancel reached the node: nothing in flight');

// --- subscriptions/listen: a node comes, notifications/tools/list_changed
const sub = await within(10000, client.listen({ toolsListChanged: true }), 'listen');
check(sub.honoredFilter.toolsListChanged === true, `the listen is acknowledged: ${JSON.stringify(sub.honoredFilter)}`);
check((await harness('add extra')) === 'ok', 'node extra connected');
for (let i = 0; i < 100 && changed === 0; i++) await sleep(100);
check(changed > 0, 'notifications/tools/list_changed on the listen stream');
await within(10000, sub.close(), 'closing the listen');
check((await within(10000, sub.closed, 'closed')) === 'local', 'the listen closed');
const after = await within(10000, client.listTools(), 'listTools after');
check(after.tools.length === LAB_TOOLS.length + 1 && after.tools.some((t) => t.name === 'extra__ping'), "extra's tool is listed");
r = await within(10000, client.callTool({ name: 'extra__ping', arguments: {} }), 'ping');
check(text(r) === 'pong', 'and called');

await client.close();
const s = summary();
console.log(`http: ${JSON.stringify(s)}`);
check(s.session_ids === 0, 'no request or response named a session');
check(s.other_methods.length === 0, 'every request was a POST (no GET stream, no DELETE)');
lines.close();
console.log('PASS');
process.exit(0);
