"""Helpers for the backend tests: a tiny ONNX model that follows the contract, frame files,
a fake Label Studio file server. Tests may use torch; the backend itself never does.

The tiny model's logits are linear in the recording's mean preprocessed brightness f:
    logits[label] = f * slope[label] + bias[label]
so a test can choose frames whose grey value decides the predicted class, and recompute the
expected probabilities in numpy (reference_probs) without the model.
"""
from __future__ import annotations

import http.server
import io
import threading
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from e2e.server_process import ThreadedHTTPServer
from training.schema import LabelSchema, load_label_config

LS_DIR = Path(__file__).resolve().parent / "fixtures" / "label_studio"  # recorded Label Studio 1.23.2 bodies


def ls_fixture(name: str):
    """A real recorded Label Studio 1.23.2 body (read-only)."""
    return json.loads((LS_DIR / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class TinyWeights:
    slopes: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    temperatures: dict[str, float]


def tiny_weights(schema: LabelSchema, seed: int = 0, temperatures: dict | None = None) -> TinyWeights:
    rng = np.random.default_rng(seed)
    slopes = {s.name: rng.uniform(-4, 4, len(s.classes)).astype(np.float32) for s in schema.labels}
    biases = {s.name: rng.uniform(-1, 1, len(s.classes)).astype(np.float32) for s in schema.labels}
    temps = {s.name: float((temperatures or {}).get(s.name, 1.0)) for s in schema.labels}
    return TinyWeights(slopes, biases, temps)


def build_tiny_model(path: str | Path, *, schema: LabelSchema | None = None, frames: int = 4,
                     image_size: int = 16, model_version: str = "tiny-v1", untrained: tuple = (),
                     drop_outputs: tuple = (), weights: TinyWeights | None = None,
                     extra_meta: dict | None = None) -> TinyWeights:
    """Export the brightness model to `path` (legacy exporter, opset 17) with recmeta metadata."""
    import onnx
    import torch

    torch.set_num_threads(1)
    schema = schema or load_label_config()
    weights = weights or tiny_weights(schema)
    names = [s.name for s in schema.labels if s.name not in drop_outputs]

    class Brightness(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for n in names:
                self.register_buffer(f"s_{n}", torch.from_numpy(weights.slopes[n]))
                self.register_buffer(f"b_{n}", torch.from_numpy(weights.biases[n]))

        def forward(self, frames, frame_mask):
            per_frame = frames.mean(dim=(2, 3, 4))
            f = (per_frame * frame_mask).sum(1) / frame_mask.sum(1).clamp(min=1.0)
            return tuple(f[:, None] * getattr(self, f"s_{n}") + getattr(self, f"b_{n}") for n in names)

    path = Path(path)
    example = (torch.zeros(1, frames, 1, image_size, image_size), torch.ones(1, frames))
    torch.onnx.export(Brightness(), example, str(path), dynamo=False, opset_version=17,
                      input_names=["frames", "frame_mask"], output_names=names,
                      dynamic_axes={"frames": {0: "B"}, "frame_mask": {0: "B"}, **{n: {0: "B"} for n in names}})
    meta = {"format": 1, "model_version": model_version, "kind": "multi", "mode": "mtl",
            "schema": schema.to_dict(), "untrained": list(untrained), "temperatures": weights.temperatures,
            "frames": frames, "image_size": image_size,
            "preprocess": {"image_size": image_size, "standardize": False, "mean": 0.0, "std": 1.0},
            "metrics": {}, "created_at": "2026-11-25T00:00:00Z", **(extra_meta or {})}
    model = onnx.load(str(path))
    model.metadata_props.add(key="recmeta", value=json.dumps(meta))
    onnx.save(model, str(path))
    return weights


def reference_probs(weights: TinyWeights, frames: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """numpy twin of the tiny model + temperature softmax, for ONE recording [N,1,S,S], [N]."""
    per_frame = frames.reshape(frames.shape[0], -1).mean(axis=1)
    f = float((per_frame * mask).sum() / max(mask.sum(), 1.0))
    out = {}
    for name, slope in weights.slopes.items():
        z = (f * slope + weights.biases[name]) / weights.temperatures[name]
        e = np.exp(z - z.max())
        out[name] = e / e.sum()
    return out


def grey_image_bytes(value: int, size: tuple[int, int] = (16, 16), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, color=value).save(buf, format=fmt)
    return buf.getvalue()


def write_recording(root: Path, name: str, values: list[int], size=(16, 16), fmt="PNG") -> list[str]:
    """Frame files under root/name/ -> Label Studio local-file refs (/data/local-files/?d=...)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i, value in enumerate(values):
        ext = "jpg" if fmt == "JPEG" else fmt.lower()
        (folder / f"{i:02d}.{ext}").write_bytes(grey_image_bytes(value, size, fmt))
        refs.append(f"/data/local-files/?d={name}/{i:02d}.{ext}")
    return refs


def task(task_id: int, frames) -> dict:
    return {"id": task_id, "data": {"frames": frames, "recording_id": f"rec{task_id}"}, "annotations": [],
            "predictions": []}


def fake_jwt(token_type: str, lifetime_s: float = 3600) -> str:
    """An (unsigned) JWT shaped like Label Studio's personal access / access tokens."""
    import base64
    import time

    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return ".".join([part({"alg": "HS256", "typ": "JWT"}),
                     part({"token_type": token_type, "exp": int(time.time() + lifetime_s)}), "sig"])


class FakeLabelStudio(ThreadedHTTPServer):
    """Serves /data/upload/<name> from `files` to `Authorization: Token <token>` or, when `pat` is
    given, to `Bearer <access>` after POST /api/token/refresh/ {"refresh": pat}; else 401."""

    def __init__(self, files: dict[str, bytes], token: str, pat: str | None = None):
        outer = self
        access = fake_jwt("access", 300)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                ok = self.path == "/api/token/refresh/" and pat is not None and body.get("refresh") == pat
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"access": access} if ok else {"detail": "bad token"}).encode())

            def do_GET(self):  # noqa: N802
                outer.seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") not in (f"Token {token}", f"Bearer {access}" if pat else None):
                    self.send_response(401)
                    self.end_headers()
                    return
                body = files.get(self.path.split("?")[0].removeprefix("/data/upload/"))
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)

            def log_message(self, *args):
                outer.requests += 1

        self.requests = 0
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization) of every GET
        super().__init__(Handler)


def backend_settings(tmp_path: Path, **overrides):
    """Settings for a test backend: MODEL_DIR and a local-files document root under tmp_path.

    The project model_version sync is off: the fake Label Studio here serves frames only
    (tests/test_backend_project_version.py covers the sync)."""
    from backend.settings import Settings

    values = dict(model_dir=tmp_path / "models", local_files_document_root=tmp_path / "docroot",
                  frame_timeout_s=2.0, onnx_threads=1, sync_project_model_version=False)
    values.update(overrides)
    (tmp_path / "docroot").mkdir(exist_ok=True)
    return Settings(**values)


def add_tiny_version(model_dir: Path, tmp_path: Path, version: str = "tiny-v1", **build_kwargs) -> TinyWeights:
    """Build a tiny model and add it to the registry at model_dir (current if none is)."""
    from backend.registry import ModelRegistry

    src = tmp_path / f"build-{version}"
    src.mkdir(parents=True, exist_ok=True)
    weights = build_tiny_model(src / "model.onnx", model_version=version, **build_kwargs)
    ModelRegistry(model_dir).add(src / "model.onnx")
    return weights


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb, without the memory)."""
    import struct
    import zlib

    data = bytearray(grey_image_bytes(0, (8, 8)))
    data[16:24] = struct.pack(">II", width, height)  # IHDR width/height follow the 8-byte signature + 8
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def recorded_schema() -> LabelSchema:
    """The schema of the labeling config the recorded Label Studio bodies were made with."""
    from training.schema import parse_label_config

    return parse_label_config((LS_DIR / "config_valuelist.xml").read_text(encoding="utf-8"))


class TrickleServer:
    """A loopback frame host that answers 200 at once, then sends its body one byte every
    `interval_s` (a slow or hostile host). `requests` counts the GETs it received."""

    def __init__(self, body: bytes, interval_s: float):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        if outer._stop.wait(interval_s):
                            return
                except OSError:  # the client gave up: what a slow host sees
                    pass

            def log_message(self, *args):
                pass

        self.requests = 0
        self._stop = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
