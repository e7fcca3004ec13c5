#!/usr/bin/env node
// WebSocket interop client (Node `ws`) for wsproto tests: the same case list, names and
// payloads as py_client.py.  Written for this repository; see README.md.
'use strict';

const fs = require('fs');

const HELP = `Usage: node node_client.js --url URL [--ca-file PEM] [--deflate] [--timeout SEC] [--case-timeout SEC]

Run the wsproto interop case list against a WebSocket echo server (Node ws), on one connection:
  text-N / binary-N   N = 0, 125, 126, 65535, 65536, 1MiB, 16MiB; echoed with same type and content
                      (text >= 65535 bytes mixes 1-4 byte UTF-8 sequences; binary is a 251-byte cycle)
  fragmented-text     one text message sent in several frames (send(data, {fin: false})), a 3- and a
                      4-byte UTF-8 sequence split across frame boundaries; echoed back as one message
  fragmented-binary   one binary message in frames of 1000, 70000 and 1 bytes
  ping-pong           ping with a 17-byte binary payload, answered by a pong with the same payload
  close-1000          close 1000 "bye"; the server's close frame must carry 1000 (reason reported)

Options:
  --url URL            echo server URL, e.g. ws://127.0.0.1:9001/ or wss://... (required)
  --ca-file PEM        for wss:// URLs: trust only the CA certificates in this file (default: Node's)
  --deflate            offer permessage-deflate (off by default); fails if the server does not accept it
  --timeout SEC        overall time limit (default 120)
  --case-timeout SEC   per-case time limit (default 30)

One line per case (PASS/FAIL), '#' lines are information, final line 'interop: N passed, M failed'.
Exit status 0 only when nothing failed.`;

const MAX_SIZE = 16 * 1024 * 1024 + 64 * 1024; // 16 MiB test messages + slack
const SIZES = [['0', 0], ['125', 125], ['126', 126], ['65535', 65535], ['65536', 65536],
  ['1MiB', 1 << 20], ['16MiB', 16 << 20]];
const MULTIBYTE_FROM = 65535; // text of at least this many bytes mixes multibyte UTF-8
const ASCII_UNIT = 'The quick brown fox jumps over the lazy dog 0123456789. ';
const UTF8_UNIT = 'wsproto h\u00e9llo w\u00f6rld \u2713 \u4e2d\u6587 \u{1F600} \u2014 caf\u00e9 ';
const FRAG_TEXT = 'fragmented \u2713 text \u{1F600} across frames \u2014 done';
const FRAG_TEXT_SPLIT = [['\u2713', 1], ['\u{1F600}', 2], ['\u2014', 1]]; // split inside these chars
const FRAG_BINARY_SIZES = [1000, 70000, 1];
const PING_PAYLOAD = Buffer.concat([Buffer.from('wsproto-ping-'), Buffer.from([0x00, 0x01, 0xfe, 0xff])]);
const CLOSE_CODE = 1000;
const CLOSE_REASON = 'bye';

function parseArgs(argv) {
  const args = { url: null, caFile: null, deflate: false, timeout: 120, caseTimeout: 30 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${a} needs a value`);
      return argv[++i];
    };
    const number = () => {
      const v = Number(value());
      if (!(v > 0)) usageError(`${a} needs a positive number`);
      return v;
    };
    if (a === '-h' || a === '--help') { console.log(HELP); process.exit(0); }
    else if (a === '--url') args.url = value();
    else if (a === '--ca-file') args.caFile = value();
    else if (a === '--deflate') args.deflate = true;
    else if (a === '--timeout') args.timeout = number();
    else if (a === '--case-timeout') args.caseTimeout = number();
    else usageError(`unknown argument ${a}`);
  }
  if (!args.url) usageError('--url is required');
  return args;
}

function usageError(msg) {
  console.error(`node_client.js: ${msg}\n\n${HELP}`);
  process.exit(2);
}

function requireWs() {
  try {
    return require('ws');
  } catch (e) {
    console.error(`node_client.js: cannot load 'ws' (${e.message}); run .ci/install-deps`);
    process.exit(2);
  }
}

// ---- deterministic payloads (same algorithm as py_client.py) -------------------------------

function makeText(n) {
  const unit = n >= MULTIBYTE_FROM ? UTF8_UNIT : ASCII_UNIT;
  const ulen = Buffer.byteLength(unit);
  const parts = [unit.repeat(Math.floor(n / ulen))];
  let rem = n % ulen;
  for (const ch of unit) { // iterates code points
    const w = Buffer.byteLength(ch);
    if (w > rem) break;
    parts.push(ch);
    rem -= w;
  }
  parts.push('.'.repeat(rem));
  return parts.join('');
}

const BLOCK = Buffer.from(Array.from({ length: 251 }, (_, i) => (i * 37 + 11) % 256));

function makeBinary(n) {
  const buf = Buffer.alloc(n);
  if (n > 0) buf.fill(BLOCK);
  return buf;
}

function fragTextPieces() {
  const data = Buffer.from(FRAG_TEXT);
  const cuts = FRAG_TEXT_SPLIT.map(([ch, k]) => Buffer.byteLength(FRAG_TEXT.slice(0, FRAG_TEXT.indexOf(ch))) + k);
  const bounds = [0, ...cuts, data.length];
  return bounds.slice(1).map((b, i) => data.subarray(bounds[i], b));
}

function fragBinaryPieces() {
  const data = makeBinary(FRAG_BINARY_SIZES.reduce((a, b) => a + b, 0));
  const pieces = [];
  let off = 0;
  for (const n of FRAG_BINARY_SIZES) { pieces.push(data.subarray(off, off + n)); off += n; }
  return pieces;
}

function human(n) {
  return n >= 1 << 20 ? `${n / (1 << 20)} MiB` : `${n} bytes`;
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

function compare(kind, got, want) {
  const gotKind = got.isBinary ? 'binary' : 'text';
  if (gotKind !== kind) return `expected a ${kind} message, got ${gotKind} (${got.data.length})`;
  if (!got.data.equals(want)) {
    return `content mismatch: got ${got.data.length} bytes, want ${want.length}, ` +
      `first difference at byte ${firstDiff(got.data, want)}`;
  }
  return null;
}

// ---- plumbing ------------------------------------------------------------------------------

class Fatal extends Error {}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Fatal(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Queue of events (messages or pongs) with awaitable next().
class Inbox {
  constructor() { this.items = []; this.waiters = []; this.closedWith = null; }
  push(item) {
    const w = this.waiters.shift();
    if (w) w.resolve(item); else this.items.push(item);
  }
  close(reason) {
    this.closedWith = reason;
    for (const w of this.waiters.splice(0)) w.reject(new Fatal(reason));
  }
  next() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.closedWith) return Promise.reject(new Fatal(this.closedWith));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

function sendAsync(ws, data, opts) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(new Fatal(`send failed: ${err.message}`)) : resolve())));
}

function caseList() {
  const cases = [];
  for (const kind of ['text', 'binary']) {
    for (const [label, n] of SIZES) cases.push([`${kind}-${label}`, { type: 'message', kind, n }]);
  }
  cases.push(['fragmented-text', { type: 'fragmented', kind: 'text' }]);
  cases.push(['fragmented-binary', { type: 'fragmented', kind: 'binary' }]);
  cases.push(['ping-pong', { type: 'ping' }]);
  cases.push([`close-${CLOSE_CODE}`, { type: 'close' }]);
  return cases;
}

async function runCase(conn, spec, ms) {
  const { ws, messages, pongs, closed } = conn;
  const recv = () => withTimeout(messages.next(), ms, 'no message');
  if (spec.type === 'message') {
    const payload = spec.kind === 'text' ? makeText(spec.n) : makeBinary(spec.n);
    const want = spec.kind === 'text' ? Buffer.from(payload) : payload;
    await withTimeout(sendAsync(ws, payload, { binary: spec.kind === 'binary' }), ms, 'send did not finish');
    const err = compare(spec.kind, await recv(), want);
    return [err === null, err || `${human(spec.n)} echoed`];
  }
  if (spec.type === 'fragmented') {
    const pieces = spec.kind === 'text' ? fragTextPieces() : fragBinaryPieces();
    const want = Buffer.concat(pieces);
    const sends = pieces.map((p, i) => sendAsync(ws, p, { binary: spec.kind === 'binary', fin: i === pieces.length - 1 }));
    await withTimeout(Promise.all(sends), ms, 'send did not finish');
    const err = compare(spec.kind, await recv(), want);
    return [err === null, err || `${want.length} bytes sent as frames ${pieces.map((p) => p.length).join('+')}, echoed as one message`];
  }
  if (spec.type === 'ping') {
    ws.ping(PING_PAYLOAD);
    let pong;
    try {
      pong = await withTimeout(pongs.next(), ms, 'no pong');
    } catch (e) {
      if (e instanceof Fatal && e.message.startsWith('no pong')) return [false, e.message];
      throw e;
    }
    if (!pong.equals(PING_PAYLOAD)) return [false, `pong payload ${pong.toString('hex')} != ping payload ${PING_PAYLOAD.toString('hex')}`];
    return [true, `pong payload ${PING_PAYLOAD.toString('hex')} (hex)`];
  }
  if (spec.type === 'close') {
    ws.close(CLOSE_CODE, CLOSE_REASON);
    let res;
    try {
      res = await withTimeout(closed, ms, 'closing handshake did not finish');
    } catch (e) {
      ws.terminate();
      return [false, e.message];
    }
    if (!res.frameReceived) return [false, `no close frame from server (close code ${res.code})`];
    const echoed = res.reason === CLOSE_REASON ? 'reason echoed' : 'reason not echoed';
    return [res.code === CLOSE_CODE, `server close frame: code ${res.code} reason ${JSON.stringify(res.reason)} (${echoed})`];
  }
  throw new Error(`unknown case ${JSON.stringify(spec)}`);
}

class Report {
  constructor(cases) { this.pending = cases.map(([name]) => name); this.passed = 0; this.failed = 0; this.done = false; }
  record(name, ok, detail, ms) {
    const i = this.pending.indexOf(name);
    if (i >= 0) this.pending.splice(i, 1);
    if (ok) this.passed++; else this.failed++;
    const timing = ms === undefined ? '' : ` [${Math.round(ms)} ms]`;
    console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}${timing}`);
  }
  failPending(why) { for (const name of [...this.pending]) this.record(name, false, `not run (${why})`); }
  finish() {
    if (this.done) return;
    this.done = true;
    console.log(`interop: ${this.passed} passed, ${this.failed} failed`);
    process.exitCode = this.failed || !this.passed ? 1 : 0;
  }
}

function connect(WebSocket, args) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(args.url, {
      perMessageDeflate: args.deflate ? {} : false,
      maxPayload: MAX_SIZE,
      handshakeTimeout: args.caseTimeout * 1000,
      // Certificate and hostname checks stay on; only the trusted roots change.
      ...(args.caFile ? { ca: fs.readFileSync(args.caFile) } : {}),
    });
    const messages = new Inbox();
    const pongs = new Inbox();
    let opened = false;
    const closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        const why = `connection closed (${code} ${JSON.stringify(reason.toString())})`;
        messages.close(why);
        pongs.close(why);
        res({ code, reason: reason.toString(), frameReceived: code !== 1006 });
      });
    });
    ws.on('message', (data, isBinary) => messages.push({ data, isBinary }));
    ws.on('pong', (data) => pongs.push(data));
    ws.on('error', (err) => {
      if (!opened) reject(err);
      else console.log(`# websocket error: ${err.message}`);
    });
    ws.on('open', () => { opened = true; resolve({ ws, messages, pongs, closed }); });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const WebSocket = requireWs();
  const cases = caseList();
  const report = new Report(cases);

  const overall = setTimeout(() => {
    report.failPending(`overall timeout of ${args.timeout} s`);
    report.finish();
    process.exit(1);
  }, args.timeout * 1000);

  const t0 = Date.now();
  let conn;
  try {
    conn = await connect(WebSocket, args);
  } catch (e) {
    report.failPending(`connect to ${args.url} failed: ${e.message}`);
    report.finish();
    clearTimeout(overall);
    return;
  }
  const exts = conn.ws.extensions || '';
  const sock = conn.ws._socket;
  const tls = sock && sock.encrypted ? `, ${sock.getProtocol()} ${sock.getCipher().name}` : '';
  console.log(`# connected to ${args.url} in ${Date.now() - t0} ms, extensions: ${exts || 'none'}${tls}`);
  if (args.deflate && !exts.includes('permessage-deflate')) {
    report.failed++;
    console.log('FAIL deflate: permessage-deflate was offered but not negotiated');
  }
  for (const [name, spec] of cases) {
    const t = Date.now();
    try {
      const [ok, detail] = await runCase(conn, spec, args.caseTimeout * 1000);
      report.record(name, ok, detail, Date.now() - t);
    } catch (e) {
      report.record(name, false, e.message, Date.now() - t);
      report.failPending(`connection unusable after ${name}`);
      conn.ws.terminate();
      break;
    }
  }
  clearTimeout(overall);
  report.finish();
}

main().catch((e) => {
  console.log(`FAIL internal error: ${e && e.stack ? e.stack : e}`);
  console.log('interop: 0 passed, 1 failed');
  process.exit(1);
});
