"""A stand-in for Label Studio's export endpoint (the active-learning tests)."""
from __future__ import annotations

import http.server
import json
import threading
import time


class FakeLabelStudio:
    """Serves GET /api/projects/<id>/export; `script` is a list of status codes (or 'stall') used
    for the first requests, then 200. Checks the legacy token header."""

    def __init__(self, export: list[dict], api_key: str = "fake-legacy-token", script=(), stall_s: float = 30.0):
        self.export, self.api_key, self.script, self.stall_s = export, api_key, list(script), stall_s
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                step = outer.script.pop(0) if outer.script else 200
                if step == "stall":
                    time.sleep(outer.stall_s)
                    step = 200
                if self.headers.get("Authorization") != f"Token {outer.api_key}":
                    step = 401
                body = json.dumps(outer.export if step == 200 else {"detail": "nope"}).encode()
                self.send_response(step)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
