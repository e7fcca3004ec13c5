#!/usr/bin/env node
// WebSocket echo server (Node `ws`) for wsproto interop tests.  Written for this repository;
// see README.md.
'use strict';

const fs = require('fs');
const https = require('https');

const HELP = `Usage: node node_echo_server.js --port P [--deflate] [--tls-cert PEM --tls-key PEM]
                               [--timeout SEC] [--max-connections N]

WebSocket echo server (Node ws) on 127.0.0.1 for wsproto interop tests.  Every text message is
echoed back as text and every binary message as binary, unchanged (fragmented messages are echoed
as one message).  Prints 'listening on ws://127.0.0.1:PORT' on stdout once ready (with --port 0 the
kernel picks a free port and the line shows it), then one line per finished connection (PASS when
the peer completed a normal closing handshake, 1000/1001/1005; FAIL otherwise, also for rejected
opening handshakes) and, on exit, 'interop: N passed, M failed'.

Options:
  --port P              TCP port on 127.0.0.1 (0 = pick a free one; required)
  --deflate             enable permessage-deflate (off by default)
  --tls-cert PEM        serve wss:// (an https server) with this certificate chain; needs --tls-key
  --tls-key PEM         the certificate's private key; needs --tls-cert
  --timeout SEC         overall run time limit (default 120); connections still open then fail
  --max-connections N   exit after N connections have finished (default 0: until signalled/timeout)

Stops on SIGTERM/SIGINT, after --max-connections connections or after --timeout.  Exit status 0
only when nothing failed (and, with --max-connections, N connections finished).`;

const MAX_SIZE = 16 * 1024 * 1024 + 64 * 1024; // 16 MiB test messages + slack
const OK_CLOSE_CODES = [1000, 1001, 1005];

function usageError(msg) {
  console.error(`node_echo_server.js: ${msg}\n\n${HELP}`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { port: null, deflate: false, tlsCert: null, tlsKey: null, timeout: 120, maxConnections: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usageError(`${a} needs a value`);
      return argv[++i];
    };
    const number = (min) => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < min) usageError(`${a} needs a number >= ${min}`);
      return v;
    };
    if (a === '-h' || a === '--help') { console.log(HELP); process.exit(0); }
    else if (a === '--port') args.port = number(0);
    else if (a === '--deflate') args.deflate = true;
    else if (a === '--tls-cert') args.tlsCert = value();
    else if (a === '--tls-key') args.tlsKey = value();
    else if (a === '--timeout') args.timeout = number(0.001);
    else if (a === '--max-connections') args.maxConnections = number(0);
    else usageError(`unknown argument ${a}`);
  }
  if (args.port === null || !Number.isInteger(args.port) || args.port > 65535) usageError('--port P is required');
  if ((args.tlsCert === null) !== (args.tlsKey === null)) usageError('--tls-cert and --tls-key go together');
  return args;
}

function human(n) {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let WebSocketServer;
  try {
    ({ WebSocketServer } = require('ws'));
  } catch (e) {
    console.error(`node_echo_server.js: cannot load 'ws' (${e.message}); run .ci/install-deps`);
    process.exit(2);
  }

  const stats = { passed: 0, failed: 0, finished: 0, open: new Set(), nextId: 1, stopping: null };
  const out = (line) => console.log(line);

  // With TLS, ws runs on an https server of ours (upgrades arrive through it); without, ws
  // listens itself.
  const tlsServer = args.tlsCert === null ? null : https.createServer({
    cert: fs.readFileSync(args.tlsCert),
    key: fs.readFileSync(args.tlsKey),
    ALPNProtocols: ['http/1.1'],
  }, (req, res) => { res.writeHead(426, { 'Content-Type': 'text/plain' }); res.end('WebSocket only\n'); });
  const wss = new WebSocketServer({
    ...(tlsServer ? { server: tlsServer } : { host: '127.0.0.1', port: args.port }),
    perMessageDeflate: args.deflate,
    maxPayload: MAX_SIZE,
    clientTracking: true,
  });

  wss.on('error', (err) => {
    out(`FAIL server error: ${err.message}`);
    stats.failed++;
    finish();
  });

  // Opening handshakes that ws rejects (bad request, bad version/key, ...).
  wss.on('wsClientError', (err, socket) => {
    stats.failed++;
    out(`FAIL handshake from ${socket.remoteAddress}:${socket.remotePort}: ${err.message}`);
    if (socket.writable) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
    socket.destroy();
  });

  wss.on('connection', (ws, req) => {
    const id = stats.nextId++;
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const t0 = Date.now();
    let msgs = 0;
    let bytes = 0;
    let error = null;
    stats.open.add(ws);
    ws.on('message', (data, isBinary) => {
      msgs++;
      bytes += data.length;
      ws.send(data, { binary: isBinary }); // text stays text (same bytes), binary stays binary
    });
    ws.on('error', (err) => { error = error || err.message; });
    ws.on('close', (code, reason) => {
      stats.open.delete(ws);
      let desc = `conn#${id} ${peer}: echoed ${msgs} messages (${human(bytes)}) in ${Date.now() - t0} ms; `;
      desc += code === 1006 ? 'no close frame received' : `peer closed with ${code} ${JSON.stringify(reason.toString())}`;
      if (ws.extensions) desc += ` [${ws.extensions}]`;
      if (stats.stopping === 'signal') {
        out(`INFO ${desc} (closed by server shutdown, not counted)`);
      } else if (stats.stopping === 'timeout') {
        stats.failed++;
        out(`FAIL ${desc} (still open at timeout)`);
      } else if (!error && OK_CLOSE_CODES.includes(code)) {
        stats.passed++;
        out(`PASS ${desc}`);
      } else {
        stats.failed++;
        out(`FAIL ${desc}${error ? ` (${error})` : ''}`);
      }
      stats.finished++;
      if (args.maxConnections && stats.finished >= args.maxConnections && !stats.stopping) stop('done');
    });
  });

  wss.on('listening', () => {
    console.error(`permessage-deflate: ${args.deflate ? 'on' : 'off'}`);
    out(`listening on ${tlsServer ? 'wss' : 'ws'}://127.0.0.1:${wss.address().port}`);
  });

  let finished = false;
  function finish() {
    if (finished) return;
    finished = true;
    out(`interop: ${stats.passed} passed, ${stats.failed} failed`);
    process.exit(stats.failed ? 1 : 0);
  }

  function stop(why) {
    if (stats.stopping && why !== 'hard') return;
    stats.stopping = why === 'timeout' ? 'timeout' : 'signal';
    if (why === 'timeout') out(`timeout: stopped after ${args.timeout} s`);
    clearTimeout(overall);
    const hadOpen = stats.open.size;
    wss.close();
    if (tlsServer) tlsServer.close();
    for (const ws of stats.open) ws.close(1001, 'server shutdown');
    if (why === 'timeout' && args.maxConnections && stats.finished < args.maxConnections) {
      out(`FAIL only ${stats.finished} of ${args.maxConnections} expected connections finished`);
      stats.failed++;
    }
    if (!hadOpen) { finish(); return; }
    // Give open connections a moment to finish their closing handshake, then force it.
    const poll = setInterval(() => { if (stats.open.size === 0) { clearInterval(poll); finish(); } }, 20);
    setTimeout(() => {
      for (const ws of stats.open) ws.terminate();
      setTimeout(finish, 100);
    }, 10000).unref();
  }

  if (tlsServer) {
    // TLS failures before any HTTP (an untrusted certificate, say) are this server's to count.
    tlsServer.on('tlsClientError', (err, socket) => {
      stats.failed++;
      out(`FAIL TLS handshake from ${socket.remoteAddress}:${socket.remotePort}: ${err.message}`);
    });
    tlsServer.listen(args.port, '127.0.0.1');
  }
  const overall = setTimeout(() => stop('timeout'), args.timeout * 1000);
  process.on('SIGTERM', () => stop('signal'));
  process.on('SIGINT', () => stop('signal'));
}

main();
