"""A test app that answers 200 to its first FLAKY_OK requests (default 2), then 500 forever.

It passes the first smoke check and then fails while a canary step bakes.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OK = int(os.environ.get("FLAKY_OK", "2"))
served = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        global served
        served += 1
        status = 200 if served <= OK else 500
        body = json.dumps({"revision": os.environ.get("K_REVISION", ""), "served": served}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
