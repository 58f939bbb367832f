// Reads the checks.json files one run of the conformance suite left under a
// results directory, prints one row per scenario, and exits non-zero when a
// scenario that is expected to pass did not. Used by scripts/mcp-conformance.sh.
//
//   node report.mjs --results DIR --scenarios "a b c" --expected FILE --not-applicable FILE [--require-all]
//
// A scenario passes when none of its checks failed and at least one of its own
// checks succeeded (the suite's wire-schema checks alone prove nothing), with two
// stricter readings than the suite's own (see strict() below).
// Warnings are shown but do not fail it. Exit codes: 0 all required passed,
// 1 a required scenario failed or did not run, 2 a list names an unknown scenario.

import fs from 'node:fs';
import path from 'node:path';

const argv = process.argv.slice(2);
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const resultsDir = opt('--results');
const scenarios = (opt('--scenarios') ?? '').split(/\s+/).filter(Boolean);
const known = new Set((opt('--known') ?? '').split(/\s+/).filter(Boolean));
const requireAll = argv.includes('--require-all');

// "name  # comment" per line; blank lines and whole-line comments ignored.
function readList(file) {
  const out = new Map();
  if (!file) return out;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = line.match(/^\s*([^#\s]+)\s*(?:#\s*(.*))?$/);
    if (m) out.set(m[1], (m[2] ?? '').trim());
  }
  return out;
}
const expected = readList(opt('--expected'));
const notApplicable = readList(opt('--not-applicable'));

// For a not-applicable entry the reason is the comment line(s) above it, or its own comment.
function reasons(file) {
  const out = new Map();
  if (!file) return out;
  let pending = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const c = line.match(/^\s*#\s?(.*)$/);
    if (c) {
      pending.push(c[1].trim());
      continue;
    }
    const m = line.match(/^\s*([^#\s]+)\s*(?:#\s*(.*))?$/);
    if (m) out.set(m[1], (m[2] ? m[2].trim() : pending.filter(Boolean).join(' ')) || '');
    else pending = [];
  }
  return out;
}
const naReason = reasons(opt('--not-applicable'));

let stale = [];
const both = [...expected.keys()].filter((n) => notApplicable.has(n));
if (both.length) stale.push(...both.map((n) => `${n} (both expected and not applicable)`));
for (const [name] of [...expected, ...notApplicable]) {
  if (known.size && !known.has(name)) stale.push(name);
}

// checks.json files are at DIR/server-<scenario>-<ISO timestamp>/checks.json.
const found = new Map();
if (resultsDir && fs.existsSync(resultsDir)) {
  for (const d of fs.readdirSync(resultsDir).sort()) { // ISO timestamps: the latest run of a scenario wins
    const m = d.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
    const file = path.join(resultsDir, d, 'checks.json');
    if (m && fs.existsSync(file)) found.set(m[1], JSON.parse(fs.readFileSync(file, 'utf8')));
  }
}

// Stricter than the suite where it is lenient: its tools-call-simple-text and
// tools-call-error accept any result with a text block, so a server that answers
// "unknown tool" as an isError result passes both without offering either tool.
function strict(scenario, checks) {
  const main = checks.find((c) => c.id === scenario);
  const result = main?.details?.result;
  if (main?.status !== 'SUCCESS' || !result) return [];
  const texts = (result.content ?? []).map((c) => c.text ?? '').join(' ');
  const fail = (errorMessage) => [{ id: `strict-${scenario}`, status: 'FAILURE', errorMessage }];
  if (scenario === 'tools-call-simple-text' && result.isError === true) {
    return fail(`the result is an error (isError: true), the tool was not run: ${texts}`);
  }
  if (scenario === 'tools-call-error' && /not found|unknown tool|no such tool/i.test(texts)) {
    return fail(`the error reads like an unknown tool, not test_error_handling's own: ${texts}`);
  }
  return [];
}

function verdict(checks, scenario) {
  if (checks) checks = [...checks, ...strict(scenario, checks)];
  if (!checks) return { result: 'not run', pass: 0, fail: 0, warn: 0, note: 'no checks.json (skipped at this spec version, or the run died)' };
  const own = checks.filter((c) => !String(c.id).startsWith('wire-schema'));
  const n = (list, s) => list.filter((c) => c.status === s).length;
  const pass = n(checks, 'SUCCESS');
  const fail = n(checks, 'FAILURE');
  const warn = n(checks, 'WARNING');
  const failed = checks.filter((c) => c.status === 'FAILURE');
  const warned = checks.filter((c) => c.status === 'WARNING');
  const first = (list) => (list.length ? `${list[0].id}: ${list[0].errorMessage ?? list[0].description ?? ''}` : '');
  if (fail > 0) return { result: 'FAIL', pass, fail, warn, note: first(failed) };
  if (n(own, 'SUCCESS') > 0) return { result: 'pass', pass, fail, warn, note: first(warned) };
  return { result: 'no verdict', pass, fail, warn, note: first(warned) || 'only INFO/SKIPPED checks' };
}

const rows = [];
for (const s of scenarios) {
  const v = verdict(found.get(s), s);
  const kind = notApplicable.has(s) ? 'n/a' : requireAll || expected.has(s) ? 'required' : 'not yet';
  rows.push({ s, kind, ...v });
}

const clip = (t, n) => (t.length > n ? t.slice(0, n - 1) + '…' : t);
const w = Math.max(8, ...rows.map((r) => r.s.length));
const line = (a, b, c, d, e) => `${a.padEnd(w)}  ${b.padEnd(10)}  ${c.padEnd(8)}  ${d.padEnd(8)}  ${e}`;
const section = (title, list, showReason) => {
  if (!list.length) return;
  console.log(`\n${title}`);
  console.log(line('scenario', 'result', 'checks', 'expected', showReason ? 'reason' : 'first failure or warning'));
  console.log(line('-'.repeat(w), '-'.repeat(10), '-'.repeat(8), '-'.repeat(8), '-'.repeat(24)));
  for (const r of list) {
    const checks = `${r.pass}/${r.fail}/${r.warn}`;
    const note = showReason ? naReason.get(r.s) ?? '' : r.note;
    console.log(line(r.s, r.result, checks, r.kind, clip(String(note).replace(/\s+/g, ' '), 110)));
  }
};
section('Scenarios (checks = passed/failed/warnings; wire-schema checks included)', rows.filter((r) => r.kind !== 'n/a'), false);
section(
  'Not applicable to a tool gateway (run for information, never counted)',
  rows.filter((r) => r.kind === 'n/a').map((r) => ({ ...r, kind: 'n/a' })),
  true,
);

const req = rows.filter((r) => r.kind === 'required');
const reqFailed = req.filter((r) => r.result !== 'pass');
const notYet = rows.filter((r) => r.kind === 'not yet');
console.log('');
if (notYet.length) {
  const ok = notYet.filter((r) => r.result === 'pass');
  console.log(
    `not required yet: ${ok.length} of ${notYet.length} pass` +
      (ok.length ? ` (could be added to the expected list: ${ok.map((r) => r.s).join(', ')})` : ''),
  );
}
if (stale.length) console.log(`unknown scenario names in the lists (typo, or gone from this suite version): ${stale.join(', ')}`);
if (reqFailed.length) console.log(`required but not passing: ${reqFailed.map((r) => r.s).join(', ')}`);
console.log(`mcp-conformance: ${req.length - reqFailed.length} passed, ${reqFailed.length} failed`);
process.exit(stale.length ? 2 : reqFailed.length ? 1 : 0);
