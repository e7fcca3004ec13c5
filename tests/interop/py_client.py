#!/usr/bin/env python3
"""WebSocket interop client (Python `websockets`, asyncio) for wsproto tests.

Connects to an echo server at --url (ws:// or wss://; --ca-file sets the trusted roots) and
runs the interop case list on one connection
(the same list, names and payloads as node_client.js):

  text-N / binary-N   N = 0, 125, 126, 65535, 65536, 1MiB, 16MiB; echoed with same type and content
                      (text >= 65535 bytes mixes 1-4 byte UTF-8 sequences; binary is a 251-byte cycle)
  fragmented-text     one text message sent in several frames, a 3- and a 4-byte UTF-8 sequence
                      split across frame boundaries; echoed back as one message
  fragmented-binary   one binary message in frames of 1000, 70000 and 1 bytes (+ empty final frame)
  ping-pong           ping with a 17-byte binary payload, answered by a pong with the same payload
  close-1000          close 1000 "bye"; the server's close frame must carry 1000 (reason reported)

One line per case (PASS/FAIL), lines starting with '#' are information, and the final
line is `interop: N passed, M failed`.  Exit status 0 only when nothing failed.
"""

import argparse
import asyncio
import os
import signal
import ssl
import sys
import time

MAX_SIZE = 16 * 1024 * 1024 + 64 * 1024  # 16 MiB test messages + slack
SIZES = [("0", 0), ("125", 125), ("126", 126), ("65535", 65535), ("65536", 65536),
         ("1MiB", 1 << 20), ("16MiB", 16 << 20)]
MULTIBYTE_FROM = 65535  # text of at least this many bytes mixes multibyte UTF-8
ASCII_UNIT = "The quick brown fox jumps over the lazy dog 0123456789. "
UTF8_UNIT = "wsproto h\u00e9llo w\u00f6rld \u2713 \u4e2d\u6587 \U0001F600 \u2014 caf\u00e9 "
FRAG_TEXT = "fragmented \u2713 text \U0001F600 across frames \u2014 done"
FRAG_TEXT_SPLIT = [("\u2713", 1), ("\U0001F600", 2), ("\u2014", 1)]  # split inside these chars
FRAG_BINARY_SIZES = [1000, 70000, 1]
PING_PAYLOAD = b"wsproto-ping-\x00\x01\xfe\xff"
CLOSE_CODE, CLOSE_REASON = 1000, "bye"


def parse_args():
    p = argparse.ArgumentParser(
        description="Run the wsproto interop case list against a WebSocket echo server (Python websockets).",
        epilog="Final line: 'interop: N passed, M failed'; exit status 0 only if M is 0.",
    )
    p.add_argument("--url", required=True, help="echo server URL, e.g. ws://127.0.0.1:9001/ or wss://...")
    p.add_argument("--ca-file", metavar="PEM",
                   help="for wss:// URLs: trust only the CA certificates in this file (default: the system's)")
    p.add_argument("--deflate", action="store_true",
                   help="offer permessage-deflate (off by default); fails if the server does not accept it")
    p.add_argument("--timeout", type=float, default=120.0, help="overall time limit in seconds (default 120)")
    p.add_argument("--case-timeout", type=float, default=30.0, help="per-case time limit in seconds (default 30)")
    return p.parse_args()


def ensure_websockets():
    """Import websockets; if missing, re-exec with the venv python made by .ci/install-deps."""
    try:
        import websockets  # noqa: F401
        return
    except ImportError:
        pass
    deps = os.environ.get("WSPROTO_DEPS") or os.path.join(os.path.expanduser("~"), ".cache", "wsproto-deps")
    venv_py = os.path.join(deps, "venv", "bin", "python")
    if os.path.exists(venv_py) and not os.environ.get("WSPROTO_INTEROP_REEXEC"):
        os.environ["WSPROTO_INTEROP_REEXEC"] = "1"
        os.execv(venv_py, [venv_py] + sys.argv)
    sys.exit("error: Python package 'websockets' not found (run .ci/install-deps and use %s)" % venv_py)


# ---- deterministic payloads (same algorithm as node_client.js) ----------------------------

def make_text(n):
    """A str whose UTF-8 encoding is exactly n bytes."""
    unit = UTF8_UNIT if n >= MULTIBYTE_FROM else ASCII_UNIT
    ulen = len(unit.encode())
    parts = [unit * (n // ulen)]
    rem = n % ulen
    for ch in unit:
        w = len(ch.encode())
        if w > rem:
            break
        parts.append(ch)
        rem -= w
    parts.append("." * rem)
    return "".join(parts)


BLOCK = bytes((i * 37 + 11) % 256 for i in range(251))


def make_binary(n):
    return (BLOCK * (n // len(BLOCK) + 1))[:n]


def frag_text_pieces():
    data = FRAG_TEXT.encode()
    cuts = [len(FRAG_TEXT[:FRAG_TEXT.index(ch)].encode()) + k for ch, k in FRAG_TEXT_SPLIT]
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def frag_binary_pieces():
    data = make_binary(sum(FRAG_BINARY_SIZES))
    pieces, off = [], 0
    for n in FRAG_BINARY_SIZES:
        pieces.append(data[off:off + n])
        off += n
    return pieces


def human(n):
    if n >= 1 << 20:
        return "%g MiB" % (n / (1 << 20))
    return "%d bytes" % n


def first_diff(a, b):
    n = min(len(a), len(b))
    step = 1 << 16
    for base in range(0, n, step):
        if a[base:base + step] != b[base:base + step]:
            for i in range(base, min(base + step, n)):
                if a[i] != b[i]:
                    return i
    return n


def compare(kind, got, want_bytes):
    """kind is 'text' or 'binary'; got is what recv() returned."""
    got_kind = "text" if isinstance(got, str) else "binary"
    if got_kind != kind:
        return "expected a %s message, got %s (%d)" % (kind, got_kind, len(got))
    got_bytes = got.encode() if isinstance(got, str) else bytes(got)
    if got_bytes != want_bytes:
        return "content mismatch: got %d bytes, want %d, first difference at byte %d" % (
            len(got_bytes), len(want_bytes), first_diff(got_bytes, want_bytes))
    return None


# ---- cases ---------------------------------------------------------------------------------

class Fatal(Exception):
    """The connection is unusable; remaining cases cannot run."""


def case_list():
    cases = []
    for kind in ("text", "binary"):
        for label, n in SIZES:
            cases.append(("%s-%s" % (kind, label), ("message", kind, n)))
    cases.append(("fragmented-text", ("fragmented", "text")))
    cases.append(("fragmented-binary", ("fragmented", "binary")))
    cases.append(("ping-pong", ("ping",)))
    cases.append(("close-%d" % CLOSE_CODE, ("close",)))
    return cases


async def run_case(ws, spec, case_timeout):
    """Returns (ok, detail)."""
    from websockets.exceptions import ConnectionClosed

    async def recv():
        try:
            return await asyncio.wait_for(ws.recv(), case_timeout)
        except asyncio.TimeoutError:
            raise Fatal("no message within %g s" % case_timeout)
        except ConnectionClosed as e:
            raise Fatal("connection closed: %s" % e)

    try:
        if spec[0] == "message":
            _, kind, n = spec
            payload = make_text(n) if kind == "text" else make_binary(n)
            want = payload.encode() if kind == "text" else payload
            await asyncio.wait_for(ws.send(payload), case_timeout)
            err = compare(kind, await recv(), want)
            return (err is None, err or "%s echoed" % human(n))
        if spec[0] == "fragmented":
            kind = spec[1]
            pieces = frag_text_pieces() if kind == "text" else frag_binary_pieces()
            want = b"".join(pieces)
            await asyncio.wait_for(ws.send(iter(pieces), text=(kind == "text")), case_timeout)
            err = compare(kind, await recv(), want)
            sizes = "+".join(str(len(p)) for p in pieces)
            return (err is None, err or "%d bytes sent as frames %s+0, echoed as one message" % (len(want), sizes))
        if spec[0] == "ping":
            # websockets resolves the waiter only for a pong whose payload equals this ping's.
            waiter = await asyncio.wait_for(ws.ping(PING_PAYLOAD), case_timeout)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), case_timeout)
            except asyncio.TimeoutError:
                return (False, "no pong with payload %r within %g s" % (PING_PAYLOAD, case_timeout))
            return (True, "pong payload %r" % PING_PAYLOAD)
        if spec[0] == "close":
            try:
                await asyncio.wait_for(ws.close(CLOSE_CODE, CLOSE_REASON), case_timeout)
            except asyncio.TimeoutError:
                return (False, "closing handshake did not finish within %g s" % case_timeout)
            rcvd = ws.protocol.close_rcvd
            if rcvd is None:
                return (False, "no close frame from server (close code %s)" % ws.close_code)
            echoed = "reason echoed" if rcvd.reason == CLOSE_REASON else "reason not echoed"
            detail = "server close frame: code %d reason %r (%s)" % (rcvd.code, rcvd.reason, echoed)
            return (rcvd.code == CLOSE_CODE, detail)
        raise AssertionError(spec)
    except asyncio.TimeoutError:
        raise Fatal("send did not finish within %g s" % case_timeout)
    except ConnectionClosed as e:
        raise Fatal("connection closed: %s" % e)


class Report:
    def __init__(self, cases):
        self.pending = [name for name, _ in cases]
        self.passed = 0
        self.failed = 0

    def record(self, name, ok, detail, ms=None):
        self.pending.remove(name)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        timing = "" if ms is None else " [%.0f ms]" % ms
        print("%s %s: %s%s" % ("PASS" if ok else "FAIL", name, detail, timing), flush=True)

    def fail_pending(self, why):
        for name in list(self.pending):
            self.record(name, False, "not run (%s)" % why)

    def finish(self):
        print("interop: %d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed or self.passed == 0 else 0


async def run(args, report, cases):
    from websockets.asyncio.client import connect

    tls = None
    if args.url.startswith("wss://"):
        # Certificate and hostname checks stay on; only the trusted roots change.
        tls = ssl.create_default_context(cafile=args.ca_file)
    t0 = time.monotonic()
    try:
        ws = await connect(
            args.url,
            ssl=tls,
            compression="deflate" if args.deflate else None,
            max_size=MAX_SIZE,
            ping_interval=None,
            open_timeout=args.case_timeout,
            close_timeout=args.case_timeout,
            proxy=None,
        )
    except Exception as e:  # noqa: BLE001
        report.fail_pending("connect to %s failed: %s: %s" % (args.url, type(e).__name__, e))
        return
    exts = [e.name for e in ws.protocol.extensions]
    tls_info = ""
    ssl_object = ws.transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        tls_info = ", %s %s" % (ssl_object.version(), ssl_object.cipher()[0])
    print("# connected to %s in %.0f ms, extensions: %s%s" % (
        args.url, (time.monotonic() - t0) * 1000, ",".join(exts) or "none", tls_info), flush=True)
    if args.deflate and "permessage-deflate" not in exts:
        report.failed += 1
        print("FAIL deflate: permessage-deflate was offered but not negotiated", flush=True)
    try:
        for name, spec in cases:
            t = time.monotonic()
            try:
                ok, detail = await run_case(ws, spec, args.case_timeout)
            except Fatal as e:
                report.record(name, False, str(e), (time.monotonic() - t) * 1000)
                report.fail_pending("connection unusable after %s" % name)
                return
            report.record(name, ok, detail, (time.monotonic() - t) * 1000)
    finally:
        if report.pending:  # fatal error or overall timeout: drop the TCP connection
            ws.transport.abort()


def main():
    args = parse_args()
    ensure_websockets()
    cases = case_list()
    report = Report(cases)

    def hard_timeout(*_):
        print("FAIL hard timeout (event loop stuck)", flush=True)
        report.fail_pending("hard timeout")
        report.finish()
        os._exit(1)

    signal.signal(signal.SIGALRM, hard_timeout)
    signal.alarm(int(args.timeout) + 15)

    async def bounded():
        try:
            await asyncio.wait_for(run(args, report, cases), args.timeout)
        except asyncio.TimeoutError:
            report.fail_pending("overall timeout of %g s" % args.timeout)

    asyncio.run(bounded())
    sys.exit(report.finish())


if __name__ == "__main__":
    main()
