"""python -m backend [--host 127.0.0.1] [--port 9090] -> uvicorn with WORKERS worker processes."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import tempfile

import uvicorn

from backend.http_protocol import NoDelayH11Protocol
from backend.log_redaction import configure_logging
from backend.settings import Settings, get_settings

log = logging.getLogger("backend")


def prepare_metrics_dir() -> str:
    """A fresh PROMETHEUS_MULTIPROC_DIR (set before any worker imports prometheus_client)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="recmeta-prometheus-")
    shutil.rmtree(path, ignore_errors=True)  # counters of a previous run must not add up
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_open(host: str, settings: Settings) -> bool:
    """Warn when anyone who can reach `host` may call every endpoint; True when it warned."""
    if settings.basic_auth_user or is_loopback(host):
        return False
    log.warning("listening on %s without basic auth: anyone who can reach it may call /predict, /setup and "
                "/webhook. Set BASIC_AUTH_USER and BASIC_AUTH_PASS (and the same in Label Studio).", host)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    args = parser.parse_args(argv)
    settings = get_settings()  # fail fast on bad configuration, before forking workers
    configure_logging(settings.log_level, settings.secrets())
    warn_if_open(args.host, settings)
    prepare_metrics_dir()
    uvicorn.run("backend.app:create_app", factory=True, host=args.host, port=args.port, http=NoDelayH11Protocol,
                workers=settings.workers, log_config=None, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
