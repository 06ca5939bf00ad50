"""Backend configuration from environment variables, read once per process.

Every variable is documented in docs/backend.md. Secrets (API key, basic-auth password) live here
only so that the log filter can redact them; they are never logged.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from backend.env_values import env_text, parse_env_value

MIN_SCORE_PREFIX = "MIN_SCORE_"


class SettingsError(ValueError):
    """An environment variable has a value the backend cannot use."""


def env_key_for_label(label: str) -> str:
    """The suffix of MIN_SCORE_<LABEL> for a label name: upper case, non-alphanumerics as '_'."""
    return re.sub(r"[^A-Z0-9]", "_", label.upper())


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("models")  # versions/<id>/model.onnx + the `current` pointer
    label_studio_url: str | None = None  # base URL for relative frame URLs; else /setup's hostname
    label_studio_api_key: str | None = field(default=None, repr=False)  # legacy token or PAT
    local_files_document_root: Path | None = None  # read /data/local-files/?d=... from disk here
    basic_auth_user: str | None = None  # when set, every endpoint but /health needs basic auth
    basic_auth_pass: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    workers: int = 1  # uvicorn worker processes; they share nothing but MODEL_DIR
    min_score: float = 0.0  # a label whose probability is below this is left to the annotator
    min_score_by_label: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    allowed_frame_hosts: tuple[str, ...] = ()  # http(s) hosts besides Label Studio frames may come from
    # without LABEL_STUDIO_URL: hosts a project's first /setup may name as its Label Studio (backend/label_studio_host.py)
    setup_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    frame_cache_dir: Path | None = None  # on-disk frame cache; None = no cache
    frame_cache_max_bytes: int = 1 << 30
    frame_timeout_s: float = 10.0  # per frame download, in total (connect + every read)
    predict_timeout_s: float = 90.0  # per /predict: unfinished tasks then get a `timeout` error (LS waits 100 s)
    max_request_mb: float = 64.0  # larger request bodies get 413 before they are parsed
    max_frame_bytes: int = 20 << 20  # larger frames are refused
    use_int8: bool = True  # serve versions/<id>/model.int8.onnx when the version has one (fp32 otherwise)
    onnx_threads: int = 0  # ONNX Runtime intra-op threads per worker; 0 = all cores
    onnx_spinning: bool = False  # idle ONNX Runtime threads busy-wait (costs CPU that decoding needs)
    sync_project_model_version: bool = True  # point the project's model_version at the version that predicted it
    quality_gate: bool = True  # pre-annotate only labels whose validation vouches for them (backend/quality_gate.py)
    quality_gate_min_val: int = 10  # labelled validation recordings a label needs to be served
    quality_gate_serve: tuple[str, ...] = ()  # labels served whatever their validation figures
    quality_gate_withhold: tuple[str, ...] = ()  # labels never served

    def min_score_for(self, label: str) -> float:
        return self.min_score_by_label.get(env_key_for_label(label), self.min_score)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.label_studio_api_key, self.basic_auth_pass) if s)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env_text(env, name)

        def number(name: str, kind, default):
            raw = get(name)
            return default if raw is None else parse_env_value(name, raw, kind, SettingsError)

        def flag(name: str, default: bool = False) -> bool:
            return parse_env_value(name, get(name) or str(default), bool, SettingsError)

        per_label = {
            key[len(MIN_SCORE_PREFIX):]: number(key, float, 0.0)
            for key in env
            if key.startswith(MIN_SCORE_PREFIX) and len(key) > len(MIN_SCORE_PREFIX)
        }
        root = get("LOCAL_FILES_DOCUMENT_ROOT")
        cache = get("FRAME_CACHE_DIR")
        hosts = tuple(h.strip().lower() for h in (get("ALLOWED_FRAME_HOSTS") or "").split(",") if h.strip())
        setup_raw = get("LABEL_STUDIO_SETUP_HOSTS") or ",".join(cls.setup_hosts)  # "none": no /setup host
        setup_hosts = () if setup_raw.lower() == "none" else tuple(h.strip().lower() for h in setup_raw.split(","))

        def names(name: str) -> tuple[str, ...]:
            return tuple(n.strip() for n in (get(name) or "").split(",") if n.strip())

        settings = cls(
            model_dir=Path(get("MODEL_DIR") or "models"),
            label_studio_url=(get("LABEL_STUDIO_URL") or "").rstrip("/") or None,
            label_studio_api_key=get("LABEL_STUDIO_API_KEY"),
            local_files_document_root=Path(root) if root else None,
            basic_auth_user=get("BASIC_AUTH_USER"),
            basic_auth_pass=get("BASIC_AUTH_PASS"),
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            workers=number("WORKERS", int, 1),
            min_score=number("MIN_SCORE", float, 0.0),
            min_score_by_label=MappingProxyType(per_label),
            allowed_frame_hosts=hosts,
            setup_hosts=tuple(h for h in setup_hosts if h),
            frame_cache_dir=Path(cache) if cache else None,
            frame_cache_max_bytes=number("FRAME_CACHE_MAX_BYTES", int, 1 << 30),
            frame_timeout_s=number("FRAME_TIMEOUT_S", float, 10.0),
            predict_timeout_s=number("PREDICT_TIMEOUT_S", float, 90.0),
            max_request_mb=number("MAX_REQUEST_MB", float, 64.0),
            max_frame_bytes=number("MAX_FRAME_BYTES", int, 20 << 20),
            use_int8=flag("USE_INT8", default=True),
            onnx_threads=number("ONNX_THREADS", int, 0),
            onnx_spinning=flag("ONNX_SPINNING"),
            sync_project_model_version=flag("SYNC_PROJECT_MODEL_VERSION", default=True),
            quality_gate=flag("QUALITY_GATE", default=True),
            quality_gate_min_val=number("QUALITY_GATE_MIN_VAL", int, 10),
            quality_gate_serve=names("QUALITY_GATE_SERVE"),
            quality_gate_withhold=names("QUALITY_GATE_WITHHOLD"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.workers < 1:
            raise SettingsError(f"WORKERS must be >= 1, got {self.workers}")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("BASIC_AUTH_USER and BASIC_AUTH_PASS must be set together")
        for name, value in [("MIN_SCORE", self.min_score), *self.min_score_by_label.items()]:
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name if name == 'MIN_SCORE' else MIN_SCORE_PREFIX + name} "
                                    f"must be in [0, 1], got {value}")
        if self.onnx_threads < 0:
            raise SettingsError(f"ONNX_THREADS must be >= 0, got {self.onnx_threads}")
        if self.frame_timeout_s <= 0 or self.max_frame_bytes <= 0:
            raise SettingsError("FRAME_TIMEOUT_S and MAX_FRAME_BYTES must be positive")
        if self.predict_timeout_s <= 0 or self.max_request_mb <= 0:
            raise SettingsError("PREDICT_TIMEOUT_S and MAX_REQUEST_MB must be positive")
        if self.quality_gate_min_val < 0:
            raise SettingsError(f"QUALITY_GATE_MIN_VAL must be >= 0, got {self.quality_gate_min_val}")
        both = sorted(set(self.quality_gate_serve) & set(self.quality_gate_withhold))
        if both:
            raise SettingsError(f"QUALITY_GATE_SERVE and QUALITY_GATE_WITHHOLD both name {both}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()
