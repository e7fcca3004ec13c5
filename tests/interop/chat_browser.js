#!/usr/bin/env node
// Browser interop check for a wsproto chat example: two headless Chromium pages (playwright-core
// driving Debian's /usr/bin/chromium) exchange a message through the server.  Written for this
// repository; see README.md.
'use strict';

const fs = require('fs');
const path = require('path');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const DEFAULT_SCREENSHOT = path.join(REPO_ROOT, 'target', 'chat.png');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'];

const HELP = `Usage: node chat_browser.js --url http://127.0.0.1:P/ [--url-b URL] [--screenshot PATH]
                          [--timeout SEC] [--step-timeout SEC] [--chromium PATH]
                          [--echo-url ws://HOST:P/] [--trust-spki BASE64] [--expect-welcome TEXT]

Opens the chat page at URL in two headless Chromium pages (A and B, separate browser contexts),
waits until both show '#status' with text 'connected', types a unique message into '#message' in
page A and presses Enter (the page submits form '#send-form'), then waits until page B's
'#messages' list has an <li> containing the message and checks that page A shows it too.  Saves a
screenshot of page B (also when a step fails, if possible).

Options:
  --url URL            chat page URL (required), e.g. http://127.0.0.1:8080/
  --url-b URL          page B's URL instead, e.g. another chat process sharing the room
  --screenshot PATH    where to save page B's screenshot (default: <repo>/target/chat.png)
  --timeout SEC        overall time limit (default 120)
  --step-timeout SEC   time limit per step (default 30)
  --chromium PATH      browser executable (default /usr/bin/chromium, from .ci/install-deps)
  --echo-url URL       also check, from page B, that Chromium negotiates permessage-deflate with
                       the echo server at URL and gets 1 MiB text and binary messages back intact
  --trust-spki BASE64  for https:// and wss:// with a test certificate: Chromium accepts a server
                       certificate whose public key (SubjectPublicKeyInfo) has this base64 SHA-256
                       (--ignore-certificate-errors-spki-list); other certificate errors still fail
  --expect-welcome TEXT
                       each page's welcome line (the first '#messages' <li> starting 'you are ';
                       the page shows notices without their '* ') must contain TEXT, e.g.
                       'over HTTP/2.0' from a server that names the HTTP version its WebSocket
                       runs over; the page's own protocol (nextHopProtocol of its Navigation
                       Timing entry, 'h2' for HTTP/2) is reported with it

One line per step (PASS/FAIL), '#' lines are information (page console errors, diagnostics),
final line 'interop: N passed, M failed'.  Exit status 0 only when nothing failed.`;

function usageError(msg) {
  console.error(`chat_browser.js: ${msg}\n\n${HELP}`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { url: null, urlB: null, screenshot: DEFAULT_SCREENSHOT, timeout: 120, stepTimeout: 30, chromium: '/usr/bin/chromium', echoUrl: null, trustSpki: null, expectWelcome: null };
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
    else if (a === '--url-b') args.urlB = value();
    else if (a === '--screenshot') args.screenshot = path.resolve(value());
    else if (a === '--timeout') args.timeout = number();
    else if (a === '--step-timeout') args.stepTimeout = number();
    else if (a === '--chromium') args.chromium = value();
    else if (a === '--echo-url') args.echoUrl = value();
    else if (a === '--trust-spki') args.trustSpki = value();
    else if (a === '--expect-welcome') args.expectWelcome = value();
    else usageError(`unknown argument ${a}`);
  }
  if (!args.url) usageError('--url is required');
  if (!args.urlB) args.urlB = args.url;
  return args;
}

const STEPS = ['launch-browser', 'page-a-connected', 'page-b-connected', 'send-from-a',
  'received-in-b', 'shown-in-a', 'screenshot'];

class Report {
  constructor(steps) { this.pending = [...steps]; this.passed = 0; this.failed = 0; this.done = false; }
  record(name, ok, detail, ms) {
    if (this.done) return; // late results after the overall timeout fired
    const i = this.pending.indexOf(name);
    if (i >= 0) this.pending.splice(i, 1);
    if (ok) this.passed++; else this.failed++;
    const timing = ms === undefined ? '' : ` [${Math.round(ms)} ms]`;
    console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}${timing}`);
  }
  failPending(why) { for (const name of [...this.pending]) this.record(name, false, `not run (${why})`); }
  finish() {
    if (this.done) return 1;
    this.done = true;
    console.log(`interop: ${this.passed} passed, ${this.failed} failed`);
    return this.failed || !this.passed ? 1 : 0;
  }
}

class StepFailed extends Error {}

// Runs one step; on failure records it and throws StepFailed so the remaining steps are skipped.
async function step(report, name, fn) {
  const t = Date.now();
  let detail;
  try {
    detail = await fn();
  } catch (e) {
    const msg = (e && e.message ? e.message : String(e)).split('\n')[0];
    report.record(name, false, msg, Date.now() - t);
    throw new StepFailed(name);
  }
  report.record(name, true, detail, Date.now() - t);
}

// Runs in the page: connects to an echo server, requires permessage-deflate, and checks that a
// 1 MiB text (multibyte) and a 1 MiB binary message come back unchanged.
async function largeDeflateEcho(url) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const next = () => new Promise((resolve, reject) => {
    ws.onmessage = (e) => resolve(e.data);
    ws.onclose = (e) => reject(new Error(`closed with ${e.code} ${e.reason}`));
    ws.onerror = () => reject(new Error('websocket error'));
  });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('cannot connect')); });
  if (!ws.extensions.includes('permessage-deflate')) throw new Error(`extensions: ${JSON.stringify(ws.extensions)}`);
  const text = 'défi ✓ 😀 '.repeat(1 << 20).slice(0, 1 << 20);
  ws.send(text);
  if ((await next()) !== text) throw new Error('1 MiB text came back different');
  const bytes = new Uint8Array(1 << 20).map((_, i) => (i * 31) % 251);
  ws.send(bytes);
  const back = new Uint8Array(await next());
  if (back.length !== bytes.length || back.some((b, i) => b !== bytes[i])) throw new Error('1 MiB binary came back different');
  ws.close(1000);
  return `negotiated ${JSON.stringify(ws.extensions)}; 1 MiB text and binary echoed`;
}

function statusIsConnected() {
  const el = document.querySelector('#status');
  return !!el && el.textContent.trim() === 'connected';
}

// The guest's welcome line ('you are guest-N ...', a notice shown without its '* '), or null
// before it arrives.
function welcomeLine() {
  const li = Array.from(document.querySelectorAll('#messages li')).find((li) => li.textContent.startsWith('you are '));
  return li ? li.textContent : null;
}

function listHas(text) {
  return Array.from(document.querySelectorAll('#messages li')).some((li) => li.textContent.includes(text));
}

async function describe(page) {
  try {
    return await page.evaluate(() => {
      const s = document.querySelector('#status');
      const items = Array.from(document.querySelectorAll('#messages li')).map((li) => li.textContent);
      return `#status=${s ? JSON.stringify(s.textContent.trim()) : 'missing'}, ` +
        `#messages li (${items.length}): ${JSON.stringify(items.slice(-5))}`;
    });
  } catch (e) {
    return `unavailable (${e.message.split('\n')[0]})`;
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    console.error(`chat_browser.js: cannot load 'playwright-core' (${e.message}); run .ci/install-deps`);
    process.exit(2);
  }
  const report = new Report(args.echoUrl ? [...STEPS, 'deflate-echo'] : STEPS);
  const stepMs = args.stepTimeout * 1000;
  let browser = null;

  const closeBrowser = async () => {
    if (!browser) return;
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  };

  const overall = setTimeout(async () => {
    report.failPending(`overall timeout of ${args.timeout} s`);
    const code = report.finish();
    await closeBrowser();
    process.exit(code);
  }, args.timeout * 1000);

  const pages = {};
  const message = `hello from A \u2713 ${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  let screenshotTaken = false;

  const openPage = async (label, url) => {
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    const page = await context.newPage();
    pages[label] = page; // also for diagnostics if this step fails
    page.setDefaultTimeout(stepMs);
    page.on('console', (m) => {
      if (m.type() === 'error') console.log(`# page ${label} console error: ${m.text()} (${m.location().url || '?'})`);
    });
    page.on('pageerror', (e) => console.log(`# page ${label} error: ${e.message}`));
    const resp = await page.goto(url, { waitUntil: 'load', timeout: stepMs });
    if (resp && !resp.ok()) throw new Error(`GET ${url} returned HTTP ${resp.status()}`);
    await page.waitForFunction(statusIsConnected, null, { timeout: stepMs, polling: 50 })
      .catch(async () => { throw new Error(`#status never became 'connected' within ${args.stepTimeout} s; ${await describe(page)}`); });
    if (args.expectWelcome === null) return `loaded ${url}, #status is 'connected'`;
    const welcome = await page.waitForFunction(welcomeLine, null, { timeout: stepMs, polling: 50 })
      .then((line) => line.jsonValue())
      .catch(async () => { throw new Error(`no welcome line within ${args.stepTimeout} s; ${await describe(page)}`); });
    const alpn = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    if (!welcome.includes(args.expectWelcome)) {
      throw new Error(`welcome line ${JSON.stringify(welcome)} lacks ${JSON.stringify(args.expectWelcome)} (page loaded over ${alpn})`);
    }
    return `loaded ${url} over ${alpn}, #status is 'connected', welcome ${JSON.stringify(welcome)}`;
  };

  try {
    await step(report, 'launch-browser', async () => {
      if (!fs.existsSync(args.chromium)) throw new Error(`${args.chromium} not found (run .ci/install-deps)`);
      const extra = args.trustSpki ? [`--ignore-certificate-errors-spki-list=${args.trustSpki}`] : [];
      browser = await chromium.launch({ executablePath: args.chromium, args: [...CHROMIUM_ARGS, ...extra], headless: true, timeout: stepMs });
      return `${args.chromium} ${browser.version()}`;
    });
    await step(report, 'page-a-connected', () => openPage('A', args.url));
    await step(report, 'page-b-connected', () => openPage('B', args.urlB));
    await step(report, 'send-from-a', async () => {
      const a = pages.A;
      if ((await a.locator('#send-form').count()) !== 1) throw new Error('page A has no form #send-form');
      if ((await a.locator('#send-form #message').count()) !== 1) throw new Error('form #send-form has no #message field');
      const input = a.locator('#message');
      await input.click();
      await input.pressSequentially(message);
      await input.press('Enter');
      return `typed ${JSON.stringify(message)} into #message and pressed Enter`;
    });
    await step(report, 'received-in-b', async () => {
      await pages.B.waitForFunction(listHas, message, { timeout: stepMs, polling: 50 })
        .catch(async () => { throw new Error(`page B never showed the message within ${args.stepTimeout} s; ${await describe(pages.B)}`); });
      return 'page B #messages has an <li> with the message';
    });
    await step(report, 'shown-in-a', async () => {
      await pages.A.waitForFunction(listHas, message, { timeout: stepMs, polling: 50 })
        .catch(async () => { throw new Error(`page A never showed its own message; ${await describe(pages.A)}`); });
      return 'page A #messages has an <li> with the message';
    });
    await step(report, 'screenshot', async () => {
      fs.mkdirSync(path.dirname(args.screenshot), { recursive: true });
      await pages.B.screenshot({ path: args.screenshot, fullPage: true, timeout: stepMs });
      screenshotTaken = true;
      const size = fs.statSync(args.screenshot).size;
      if (size === 0) throw new Error(`${args.screenshot} is empty`);
      return `page B saved to ${args.screenshot} (${size} bytes)`;
    });
    if (args.echoUrl) {
      await step(report, 'deflate-echo', () => pages.B.evaluate(largeDeflateEcho, args.echoUrl));
    }
  } catch (e) {
    if (!(e instanceof StepFailed)) {
      console.log(`FAIL internal error: ${e && e.stack ? e.stack : e}`);
      report.failed++;
    }
    report.failPending('an earlier step failed');
    const diagPage = pages.B || pages.A;
    if (diagPage && !screenshotTaken && !report.done) {
      try {
        fs.mkdirSync(path.dirname(args.screenshot), { recursive: true });
        await diagPage.screenshot({ path: args.screenshot, fullPage: true, timeout: 5000 });
        console.log(`# diagnostic screenshot of page ${pages.B ? 'B' : 'A'}: ${args.screenshot}`);
      } catch (_) { /* best effort */ }
    }
  }
  clearTimeout(overall);
  const code = report.finish();
  await closeBrowser();
  process.exit(code);
}

main().catch((e) => {
  console.log(`FAIL internal error: ${e && e.stack ? e.stack : e}`);
  console.log('interop: 0 passed, 1 failed');
  process.exit(1);
});
