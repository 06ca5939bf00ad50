"""Model directory: versions side by side, one `current` pointer switched atomically.

Layout:
    MODEL_DIR/versions/<version>/model.onnx        (+ model.int8.onnx, metrics.json when present)
    MODEL_DIR/current                              one line: the current version id

A version is copied into a hidden temp folder and renamed into place, and the pointer is written
to a temp file and os.replace()d, so a reader never sees a half-written model or pointer.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from training.atomic_write import write_text_atomic

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
METRICS_FILE = "metrics.json"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RegistryError(ValueError):
    """A model directory operation cannot be done (unknown version, bad id, missing file)."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    has_int8: bool
    created_at: float  # mtime of the version folder (seconds since the epoch)

    def to_dict(self) -> dict:
        return {"version": self.version, "has_int8": self.has_int8, "created_at": self.created_at}


def check_version_id(version: str) -> str:
    if not VERSION_RE.match(version or ""):
        raise RegistryError(f"version id {version!r} must match {VERSION_RE.pattern}")
    return version


class ModelRegistry:
    def __init__(self, model_dir: str | Path):
        self.root = Path(model_dir)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "current"

    # --- reading (cheap: the /setup path uses only these) ---
    def current(self) -> str | None:
        """The current version id, or None when no model was made current yet."""
        try:
            version = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return version or None

    def pointer_stamp(self) -> tuple[int, str | None]:
        """(mtime_ns, version) of the pointer: changes whenever `use` switches the model."""
        try:
            return self.pointer.stat().st_mtime_ns, self.current()
        except FileNotFoundError:
            return 0, None

    def version_dir(self, version: str) -> Path:
        path = self.versions_dir / check_version_id(version)
        if not (path / MODEL_FILE).is_file():
            raise RegistryError(f"unknown model version {version!r} (no {path / MODEL_FILE})")
        return path

    def model_path(self, version: str, int8: bool = False) -> Path:
        """model.int8.onnx when int8 is asked for and present, else model.onnx."""
        path = self.version_dir(version)
        if int8 and (path / INT8_FILE).is_file():
            return path / INT8_FILE
        return path / MODEL_FILE

    def versions(self) -> list[VersionInfo]:
        """All complete versions, oldest first (hidden temp folders are not versions)."""
        if not self.versions_dir.is_dir():
            return []
        found = [
            VersionInfo(p.name, p, (p / INT8_FILE).is_file(), p.stat().st_mtime)
            for p in self.versions_dir.iterdir()
            if VERSION_RE.match(p.name) and (p / MODEL_FILE).is_file()
        ]
        return sorted(found, key=lambda v: (v.created_at, v.version))

    # --- writing (CLI / trainer) ---
    def add(self, onnx_path: str | Path, version: str | None = None, *, make_current: bool = False) -> str:
        """Copy a model (and model.int8.onnx / metrics.json / split.json / model.pt beside it) in as a new version.

        split.json and model.pt let a retraining job keep the same validation subjects and warm-start.

        The version id is `version`, else recmeta's model_version, else a timestamp. The model
        is loaded once first so that a file breaking the ONNX contract is never added.
        """
        from training.onnx_runner import OnnxRecordingModel  # torch-free; loads + checks the contract

        src = Path(onnx_path)
        if not src.is_file():
            raise RegistryError(f"no model file at {src}")
        meta = OnnxRecordingModel(src).meta
        version = check_version_id(version or meta.get("model_version") or time.strftime("v%Y%m%d-%H%M%S"))
        target = self.versions_dir / version
        if target.exists():
            raise RegistryError(f"version {version!r} already exists in {self.versions_dir}")
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions_dir))
        try:
            shutil.copyfile(src, tmp / MODEL_FILE)
            for extra in (INT8_FILE, METRICS_FILE, "split.json", "model.pt"):
                if (src.parent / extra).is_file() and src.name != extra:
                    shutil.copyfile(src.parent / extra, tmp / extra)
            (tmp / "recmeta.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
            os.rename(tmp, target)  # atomic on one filesystem; fails if target appeared meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current or self.current() is None:
            self.use(version)
        return version

    def use(self, version: str) -> None:
        """Make `version` current: write a temp file, fsync, os.replace (atomic)."""
        self.version_dir(version)
        write_text_atomic(self.pointer, version + "\n")
