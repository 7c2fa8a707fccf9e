"""A webhook receiver for mlyard's signed deliveries: standard library only, run it anywhere.

    MLYARD_WEBHOOK_SECRET=<the webhook's secret> python receiver.py --port 8765

Each POST must carry ``X-Mlyard-Timestamp`` (unix seconds) and ``X-Mlyard-Signature: v1=<hex>``, the
HMAC-SHA256 of ``"<timestamp>.<body>"`` under the secret (several ``v1=`` values, comma-separated,
while a secret is being rotated). A delivery is accepted (200) when a signature matches and the
timestamp is within five minutes of this machine's clock; otherwise it is refused (401), so a
captured delivery replayed later is refused too. Accepted events are printed, one line each.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_S = 300


def verify(secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float | None = None) -> str:
    """Why the delivery is refused, or "" when it is authentic and recent."""
    if not timestamp or not signature:
        return "missing X-Mlyard-Timestamp or X-Mlyard-Signature"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"X-Mlyard-Timestamp {timestamp!r} is not unix seconds"
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_S:
        return "timestamp more than 5 minutes away from this clock (a replay, or a clock to fix)"
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, part.strip()) for part in signature.split(",")):
        return "signature does not match (another secret, or a changed body)"
    return ""


def handler(secret: str) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            problem = verify(secret, body, self.headers.get("X-Mlyard-Timestamp"),
                             self.headers.get("X-Mlyard-Signature"))
            if problem:
                print(f"refused: {problem}", file=sys.stderr, flush=True)
                self.send_response(401)
                self.end_headers()
                self.wfile.write(problem.encode())
                return
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            print(f"{event.get('type', '?')} {event.get('subject', '')} "
                  f"(delivery {self.headers.get('X-Mlyard-Delivery', '?')})", flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet: one line per event is printed above
            pass

    return Receiver


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive and verify mlyard webhook deliveries.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret", default=os.environ.get("MLYARD_WEBHOOK_SECRET"),
                        help="The webhook's secret (default: $MLYARD_WEBHOOK_SECRET).")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give the webhook's secret with --secret or MLYARD_WEBHOOK_SECRET")
    server = ThreadingHTTPServer((args.host, args.port), handler(args.secret))
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
