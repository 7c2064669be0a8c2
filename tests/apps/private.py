"""A test app behind Cloud Run's IAM check: without ``Authorization: Bearer ...`` it answers 403, as
Cloud Run's front end does for a service that does not allow unauthenticated invocations
(``PUBLIC=1``: it answers 200 either way, as a service that allows them).

Each request is written to the file ``SEEN`` (when set), one line: ``token`` or ``none``, so a test
can tell which requests carried an ID token.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUBLIC = os.environ.get("PUBLIC") == "1"
SEEN = os.environ.get("SEEN", "")
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "").startswith("Bearer ")
        if SEEN:
            with lock, open(SEEN, "a", encoding="utf-8") as f:
                f.write("token\n" if token else "none\n")
        status = 200 if token or PUBLIC else 403
        body = json.dumps({"revision": os.environ.get("K_REVISION", "")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
