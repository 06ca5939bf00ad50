"""Shared fixtures: the repo's label schema, the recorded Label Studio bodies, and the shared data folder."""
import os
from pathlib import Path

import pytest

from training.schema import load_label_config

REPO = Path(__file__).resolve().parents[1]
# real request/response bodies recorded against Label Studio 1.23.2 (PROTOCOL.md there says what they show)
LS_RECORDED = Path(__file__).resolve().parent / "fixtures" / "label_studio"


def shared_dir(*parts: str) -> Path:
    """A path in the shared data folder ($RECMETA_SHARED, else ../shared beside the repository root); the calling
    test is skipped, with the path in the reason, when it is absent. Read only inside tests, never at import."""
    path = Path(os.environ.get("RECMETA_SHARED") or REPO.parent / "shared").joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (set RECMETA_SHARED or put the shared folder beside the repo)")
    return path


@pytest.fixture(scope="session")
def schema():
    """The repo's eleven-label schema (label_config.xml)."""
    return load_label_config()


@pytest.fixture(scope="session")
def recorded_dir():
    """Folder of real request/response bodies recorded against Label Studio 1.23.2 (read-only)."""
    return LS_RECORDED


@pytest.fixture(scope="session")
def benchmarks_dir():
    """Folder of the real-data benchmark exports (read-only); skips when the shared folder is absent."""
    return shared_dir("benchmarks")


class LocalServer:
    """A tiny HTTP/1.0 server on 127.0.0.1 (random port) for client tests.

    ``routes[path] = fn(method, headers, body) -> (status, headers_dict, body_bytes)``
    (path without the query string; unknown paths answer 404);
    every request is recorded in ``requests`` as (method, path, headers, body)."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append((self.command, self.path, dict(self.headers), body))
                route = server.routes.get(self.path.split("?")[0])
                status, headers, payload = route(self.command, self.headers, body) if route else (404, {}, b"not found")
                self.send_response(status)
                for k, v in headers.items():
                    if v is not None:  # {"Content-Length": None}: send no length, close to end the body
                        self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # client stopped reading (size limits)
                    pass

            do_GET = do_POST = _serve

            def log_message(self, *args):  # keep test output quiet
                pass

        self.routes: dict = {}
        self.requests: list = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server_factory():
    """Call it to start a LocalServer; all are closed after the test."""
    servers = []

    def start() -> LocalServer:
        servers.append(LocalServer())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def local_server(local_server_factory):
    """A fresh LocalServer per test."""
    return local_server_factory()
