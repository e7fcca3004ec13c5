#!/usr/bin/env python3
"""WebSocket echo server (Python `websockets`, asyncio) for wsproto interop tests.

Listens on 127.0.0.1 only.  Every text message is echoed back as text and every binary
message as binary, unchanged (fragmented messages are echoed as one message).  Prints
`listening on ws://127.0.0.1:PORT` (`wss://` with --tls-cert/--tls-key) on stdout (flushed) once ready; with --port 0 the
kernel picks a free port and the line shows it.  Then one line per finished connection
(PASS when the peer completed a normal closing handshake, 1000/1001/1005; FAIL otherwise,
also for failed opening handshakes) and, on exit, `interop: N passed, M failed`.

Stops on SIGTERM/SIGINT, after --max-connections connections, or after --timeout seconds
(connections still open then count as failed; so does not reaching --max-connections).
Exit status 0 only when nothing failed.
"""

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import time

MAX_SIZE = 16 * 1024 * 1024 + 64 * 1024  # 16 MiB test messages + slack
OK_CLOSE_CODES = (1000, 1001, 1005)


def parse_args():
    p = argparse.ArgumentParser(
        description="WebSocket echo server (Python websockets) on 127.0.0.1 for wsproto interop tests.",
        epilog="Prints 'listening on ws://127.0.0.1:PORT' when ready; final line 'interop: N passed, M failed'.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--deflate", action="store_true", help="enable permessage-deflate (off by default)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve wss:// with this certificate chain (needs --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (needs --tls-cert)")
    p.add_argument("--subprotocol", metavar="NAME", action="append", default=[],
                   help="accept this subprotocol when offered (repeatable)")
    p.add_argument("--timeout", type=float, default=120.0, help="overall run time limit in seconds (default 120)")
    p.add_argument("--max-connections", type=int, default=0, metavar="N",
                   help="exit after N connections have finished (default 0: run until signalled or timeout)")
    args = p.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    return args


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


def out(line):
    print(line, flush=True)


def human(n):
    if n >= 1 << 20:
        return "%.1f MiB" % (n / (1 << 20))
    if n >= 1 << 10:
        return "%.1f KiB" % (n / (1 << 10))
    return "%d B" % n


class Stats:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.finished = 0
        self.open = 0
        self.next_id = 1
        self.stopping = None  # None, "timeout" or "signal"


class ErrorLog(logging.Handler):
    """Errors that websockets reports only through logging count as failures."""

    def __init__(self, stats):
        super().__init__(level=logging.ERROR)
        self.stats = stats

    def emit(self, record):
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            cause = exc.__cause__ or exc
            msg = "%s: %s: %s" % (msg, type(cause).__name__, cause)
        if record.getMessage() == "opening handshake failed":
            out("INFO " + msg)  # the rejection is counted by process_response
            return
        self.stats.failed += 1
        out("FAIL server: %s" % msg)


async def run(args):
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    stats = Stats()
    stop = asyncio.Event()
    logger = logging.getLogger("wsproto-interop.server")
    logger.propagate = False
    logger.setLevel(logging.ERROR)
    logger.addHandler(ErrorLog(stats))

    def process_response(connection, request, response):
        # Opening handshakes that were rejected (bad key/version/upgrade, ...) count as failures.
        if response.status_code != 101:
            stats.failed += 1
            exc = connection.protocol.handshake_exc
            why = "%s: %s" % (type(exc).__name__, exc) if exc else response.reason_phrase
            out("FAIL handshake from %s:%s %s %s: %d %s (%s)" % (
                connection.remote_address[0], connection.remote_address[1], request.method,
                request.path, response.status_code, response.reason_phrase, why))
        return None

    async def handler(ws):
        cid = stats.next_id
        stats.next_id += 1
        stats.open += 1
        peer = "%s:%s" % ws.remote_address[:2]
        t0 = time.monotonic()
        msgs = nbytes = 0
        error = None
        try:
            async for msg in ws:  # str for text, bytes for binary
                await ws.send(msg)
                msgs += 1
                nbytes += len(msg.encode()) if isinstance(msg, str) else len(msg)
        except ConnectionClosed:
            pass  # classified below from the close frames
        except Exception as e:  # noqa: BLE001
            error = "%s: %s" % (type(e).__name__, e)
        await ws.wait_closed()
        stats.open -= 1
        rcvd = ws.protocol.close_rcvd
        desc = "conn#%d %s: echoed %d messages (%s) in %.0f ms; " % (
            cid, peer, msgs, human(nbytes), (time.monotonic() - t0) * 1000)
        if rcvd is None:
            desc += "no close frame received"
        else:
            desc += "peer closed with %d %r" % (rcvd.code, rcvd.reason)
        exts = [e.name for e in ws.protocol.extensions]
        if exts:
            desc += " [%s]" % ",".join(exts)
        if ws.subprotocol:
            desc += " subprotocol %s" % ws.subprotocol
        ok = error is None and rcvd is not None and rcvd.code in OK_CLOSE_CODES
        if stats.stopping == "signal":
            out("INFO " + desc + " (closed by server shutdown, not counted)")
        elif stats.stopping == "timeout":
            stats.failed += 1
            out("FAIL " + desc + " (still open at timeout)")
        elif ok:
            stats.passed += 1
            out("PASS " + desc)
        else:
            stats.failed += 1
            out("FAIL " + desc + (" (%s)" % error if error else ""))
        stats.finished += 1
        if args.max_connections and stats.finished >= args.max_connections:
            stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        tls.set_alpn_protocols(["http/1.1"])

    timed_out = False
    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        compression="deflate" if args.deflate else None,
        max_size=MAX_SIZE,
        ping_interval=None,  # no unsolicited pings: keep the peer's view deterministic
        close_timeout=10,
        logger=logger,
        process_response=process_response,
        ssl=tls,
        subprotocols=args.subprotocol or None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print("permessage-deflate: %s" % ("on" if args.deflate else "off"), file=sys.stderr, flush=True)
        out("listening on %s://127.0.0.1:%d" % ("wss" if tls else "ws", port))
        try:
            await asyncio.wait_for(stop.wait(), args.timeout)
            stats.stopping = "signal" if stats.open else None
        except asyncio.TimeoutError:
            timed_out = True
            stats.stopping = "timeout"
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(server.wait_closed(), 12)
        except asyncio.TimeoutError:
            pass

    if timed_out:
        out("timeout: stopped after %.0f s" % args.timeout)
        if args.max_connections and stats.finished < args.max_connections:
            out("FAIL only %d of %d expected connections finished" % (stats.finished, args.max_connections))
            stats.failed += 1
    return stats


def main():
    args = parse_args()
    ensure_websockets()
    # Hard bound even if the event loop gets stuck.
    signal.signal(signal.SIGALRM, lambda *_: (out("FAIL hard timeout"), out("interop: 0 passed, 1 failed"), os._exit(1)))
    signal.alarm(int(args.timeout) + 30)
    stats = asyncio.run(run(args))
    out("interop: %d passed, %d failed" % (stats.passed, stats.failed))
    sys.exit(1 if stats.failed else 0)


if __name__ == "__main__":
    main()
