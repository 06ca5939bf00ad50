"""Shared fixtures: the repo's label schema and the read-only recorded Label Studio bodies."""
from pathlib import Path

import pytest

from training.schema import load_label_config

LS_RECORDED = Path("/work/shared/label-studio-1.23.2")
BENCHMARKS = Path("/work/shared/benchmarks")


@pytest.fixture(scope="session")
def schema():
    """The repo's eleven-label schema (label_config.xml)."""
    return load_label_config()


@pytest.fixture(scope="session")
def recorded_dir():
    """Folder of real request/response bodies recorded against Label Studio 1.23.2 (read-only)."""
    if not LS_RECORDED.is_dir():
        pytest.skip(f"{LS_RECORDED} not available")
    return LS_RECORDED


@pytest.fixture(scope="session")
def benchmarks_dir():
    """Folder of the real-data benchmark exports (read-only)."""
    if not BENCHMARKS.is_dir():
        pytest.skip(f"{BENCHMARKS} not available")
    return BENCHMARKS


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
