"""A stand-in for a region's application endpoint in the lab: answers 200 `ok` on every path.

`make lab` starts one for each region (hot on 127.0.0.1:8081, cold on 127.0.0.1:8082) and
failoverd's HTTP probes watch them. Stop the hot one to watch failoverd detect the loss and the
auto-failover policy act; start it again to watch recovery:

    kill "$(cat .lab/endpoint-hot.pid)"
    .venv/bin/python lab/endpoint.py --port 8081 & echo $! > .lab/endpoint-hot.pid
"""

import argparse
import http.server
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
