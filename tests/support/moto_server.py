#!/usr/bin/env python3
"""Run a moto server (all services) with failoverd's extension loaded in the same process.

    .venv/bin/python tests/support/moto_server.py --host 127.0.0.1 --port 0

* ``--port 0`` binds a free port. Once the socket listens, exactly one line
  ``MOTO_READY port=<N>`` is printed to stdout (and flushed); nothing else goes to stdout.
* The process exits when its stdin reaches EOF, so a harness that closes the child's stdin pipe,
  or dies, never leaves it behind. ``--ignore-stdin`` turns that off (for a background lab server
  whose stdin is ``/dev/null``). It also exits on SIGTERM and SIGINT.
* Request logs are off unless ``--verbose``.
* ``--global-cluster-transition SECONDS``: how long Aurora switchover/failover stay in progress
  (default 0). Also settable at run time: ``POST /_failoverd/rds/settings``.

The extension (``failoverd_moto``, next to this file) and its seeding endpoints are documented
in that package.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import failoverd_moto  # noqa: E402
from failoverd_moto import rds  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit when stdin reaches EOF")
    parser.add_argument(
        "--global-cluster-transition",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds a global cluster switchover/failover stays in progress (default 0)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rds.SETTINGS["transition_seconds"] = args.global_cluster_transition

    app = failoverd_moto.wrap(DomainDispatcherApplication(create_backend_app))
    handler = MotoRequestHandler if args.verbose else QuietRequestHandler
    try:
        server = make_server(args.host, args.port, app, threaded=True, request_handler=handler)
    except OSError as err:
        print(f"moto_server: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    port = server.server_address[1]
    # moto builds some URLs that point back at itself from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:

        def watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read1(65536):
                    pass
            except (OSError, ValueError):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    serving = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    serving.start()
    print(f"MOTO_READY port={port}", flush=True)
    while not stop.wait(0.5):
        if not serving.is_alive():
            return 1
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A plain exit would wait for the stdin watcher, blocked in read() on the buffered stdin,
    # and CPython aborts at shutdown when a daemon thread holds that buffer's lock.
    os._exit(status)
