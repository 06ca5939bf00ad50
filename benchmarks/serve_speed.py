"""Serving speed on CPU, side by side in one run: the real server end to end in several
configurations (CONFIGS), and in this process the model alone (ONNX Runtime fp32 / static int8,
torch eager as the reference), frame decoding and RecordingBackend.predict without HTTP.

Setup: width-0.5 multi-image RecordingModel at 224 px, 10 frames per recording, untrained weights
(speed does not depend on them), frames are 1280x800 JPEGs read from a local-files document root.
Each server configuration is started through scripts/docker_entrypoint.sh (as in the image), warmed
up by 8 clients for 2 s, then gets one task at a time (p50/p90 of 40 requests), then 8 concurrent
clients for 2x --seconds. Every failed request counts as an error. This process runs with jemalloc
(torch eager's faster allocator here); each server gets the allocator its MALLOC names.

    .venv/bin/python benchmarks/serve_speed.py [--threads 2] [--seconds 5] [--only int8,fp32]

Targets (docs/backend.md): fp32 >= 60 rec/s, int8 >= 90 rec/s, /predict p50 <= 30 ms,
8 clients >= 35 rec/s with zero errors. On a shared machine only figures of one run compare.
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/...` puts only benchmarks/ on the path
from tests.e2e.server_process import free_port, wait_for_health  # noqa: E402  (shared with the tests)

FRAMES, SIZE, WIDTH = 10, 224, 0.5
CLIENTS = 8
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


@dataclass(frozen=True)
class ServeConfig:
    """One server configuration: the environment docker_entrypoint.sh starts it with."""

    name: str
    int8: bool = False  # USE_INT8
    workers: int = 1  # WORKERS
    threads: int = 2  # ONNX_THREADS per worker
    malloc: str = "glibc"  # MALLOC: glibc or jemalloc
    spinning: bool = False  # ONNX_SPINNING (ONNX Runtime's own default is on)

    def env(self) -> dict[str, str]:
        return {"USE_INT8": str(self.int8).lower(), "WORKERS": str(self.workers), "ONNX_THREADS": str(self.threads),
                "MALLOC": self.malloc, "ONNX_SPINNING": str(self.spinning).lower()}


CONFIGS = (
    ServeConfig("int8", int8=True),
    ServeConfig("int8 jemalloc", int8=True, malloc="jemalloc"),
    ServeConfig("fp32"),
    ServeConfig("fp32 jemalloc", malloc="jemalloc"),
    ServeConfig("int8 2 workers x 1 thread", int8=True, workers=2, threads=1),
    ServeConfig("fp32 jemalloc spinning (before)", malloc="jemalloc", spinning=True),
)


def synthetic_jpeg(rng: np.random.Generator) -> bytes:
    """A 1280x800 greyscale JPEG with smooth structure plus noise (decodes like a real frame)."""
    y, x = np.mgrid[0:800, 0:1280]
    base = 128 + 60 * np.sin(x / rng.uniform(40, 120)) * np.cos(y / rng.uniform(40, 120))
    pixels = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)  # mild sensor noise
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def write_recordings(root: Path, n: int) -> list[list[str]]:
    rng = np.random.default_rng(0)
    refs = []
    for r in range(n):
        folder = root / f"rec{r}"
        folder.mkdir(parents=True)
        for i in range(FRAMES):
            (folder / f"{i:02d}.jpg").write_bytes(synthetic_jpeg(rng))
        refs.append([f"/data/local-files/?d=rec{r}/{i:02d}.jpg" for i in range(FRAMES)])
    return refs


def build_models(out: Path, threads: int, batches) -> tuple[Path, Path, object]:
    """Export the untrained model (fp32) and its static QDQ int8 twin as training.quantize makes it."""
    import torch

    from training.models.recording_model import RecordingModel
    from training.onnx_export import export_onnx
    from training.quantize import quantize_model
    from training.schema import load_label_config

    torch.set_num_threads(threads)
    schema = load_label_config()
    model = RecordingModel({s.name: len(s.classes) for s in schema.labels}, frames=FRAMES, width=WIDTH).eval()
    meta = {"model_version": "bench-untrained", "kind": "multi", "mode": "mtl", "schema": schema.to_dict(),
            "untrained": [], "temperatures": {}, "frames": FRAMES, "image_size": SIZE,
            "preprocess": {"image_size": SIZE}, "metrics": {}}
    fp32 = export_onnx(model, out / "model.onnx", meta, torch.zeros(1, FRAMES, 1, SIZE, SIZE), torch.ones(1, FRAMES))
    int8 = out / "model.int8.onnx"
    quantize_model(fp32, int8, batches, evaluate=lambda path: 1.0)  # speed only: keep it whatever it scores
    return fp32, int8, model


def timed(run, seconds: float) -> dict:
    """Recordings per second and p50 latency of `run()` (one recording per call) after a warm-up."""
    for _ in range(3):
        run()
    latencies, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - t)
    return {"rec_per_s": len(latencies) / (time.perf_counter() - started),
            "p50_ms": 1000 * statistics.median(latencies)}


def start_backend(model_dir: Path, docroot: Path, config: ServeConfig) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # MALLOC decides
    env.update(config.env(), MODEL_DIR=str(model_dir), LOCAL_FILES_DOCUMENT_ROOT=str(docroot), LOG_LEVEL="WARNING",
               PYTHON=sys.executable, HOST="127.0.0.1", PORT=str(port),
               PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="bench-prom-"))
    proc = subprocess.Popen(["sh", str(ROOT / "scripts" / "docker_entrypoint.sh")], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, timeout_s=30)
    except RuntimeError:
        proc.terminate()
        raise
    return proc, url


def predict_once(client, url: str, refs: list[str], task_id: int) -> bool:
    body = {"tasks": [{"id": task_id, "data": {"frames": refs}}], "project": "1.0"}
    response = client.post(url + "/predict", json=body, timeout=30)
    return response.status_code == 200 and "result" in response.json()["results"][0]


def concurrent_clients(url: str, recordings: list[list[str]], seconds: float, clients: int) -> tuple[int, int, float]:
    """`clients` threads, each sending one task at a time for `seconds`: (answered, failed, elapsed)."""
    import httpx

    done, failed, stop = [0], [0], time.perf_counter() + seconds
    lock = threading.Lock()

    def client_loop(k: int) -> None:
        with httpx.Client() as client:
            i = k
            while time.perf_counter() < stop:
                try:
                    ok = predict_once(client, url, recordings[i % len(recordings)], i)
                except httpx.HTTPError:
                    ok = False
                with lock:
                    done[0] += ok
                    failed[0] += not ok
                i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], failed[0], time.perf_counter() - started


def end_to_end(url: str, recordings: list[list[str]], seconds: float, clients: int = CLIENTS) -> dict:
    """One task at a time (40 requests), then `clients` concurrent clients. Every failed request
    counts as an error, warm-up included (it loads the model in every worker)."""
    import httpx

    _, warm_up_errors, _ = concurrent_clients(url, recordings, 2.0, clients)
    with httpx.Client() as client:
        latencies, errors = [], warm_up_errors
        for i in range(40):
            started = time.perf_counter()
            errors += not predict_once(client, url, recordings[i % len(recordings)], i)
            latencies.append(time.perf_counter() - started)
    done, failed, elapsed = concurrent_clients(url, recordings, seconds, clients)
    return {"p50_ms": 1000 * statistics.median(latencies), "p90_ms": 1000 * statistics.quantiles(latencies, n=10)[-1],
            "errors": errors + failed, "clients_rec_per_s": done / elapsed}


def breakdown(model_dir: Path, docroot: Path, recordings: list[list[str]], seconds: float) -> dict:
    """Where one task's time goes, in this process: decoding its frames, then the whole
    RecordingBackend.predict (decode + model + results) without HTTP."""
    from concurrent.futures import ThreadPoolExecutor

    from backend.recording_model import FRAME_THREADS, RecordingBackend
    from backend.settings import Settings
    from backend.task_frames import FrameBatchShape, TaskFrameLoader
    from training.frame_source import FrameFetcher, FrameSourceConfig
    from training.preprocess import PreprocessConfig, frames_to_batch

    shape = FrameBatchShape(FRAMES, PreprocessConfig(image_size=SIZE))
    fetcher = FrameFetcher(FrameSourceConfig(document_root=str(docroot)))
    loader = TaskFrameLoader(ThreadPoolExecutor(FRAME_THREADS))
    files = [[(docroot / r.split("?d=")[1]).read_bytes() for r in refs] for refs in recordings]
    rows, k = {}, iter(range(1 << 30))
    rows["decode 10 frames, one thread"] = timed(lambda: frames_to_batch(files[next(k) % len(files)], FRAMES,
                                                                         shape.preprocess), seconds)
    rows[f"decode 10 frames, {FRAME_THREADS}-thread pool (as served)"] = timed(lambda: loader.collect(
        loader.submit(fetcher, recordings[next(k) % len(recordings)], shape), shape), seconds)
    for int8 in (False, True):
        backend = RecordingBackend(Settings(model_dir=model_dir, local_files_document_root=docroot, use_int8=int8))
        rows[f"RecordingBackend.predict, {'int8' if int8 else 'fp32'}, no HTTP"] = timed(lambda b=backend: b.predict(
            [{"id": 1, "data": {"frames": recordings[next(k) % len(recordings)]}}]), seconds)
    return rows


def table(in_process: dict, served: dict) -> str:
    lines = ["| configuration | one task p50 / p90 (ms) | 8 clients (rec/s, errors) |", "|---|---|---|"]
    for name, r in served.items():
        lines.append(f"| {name} | {r['p50_ms']:.1f} / {r['p90_ms']:.1f} | {r['clients_rec_per_s']:.1f}, {r['errors']} |")
    lines += ["", "| in this process, one recording at a time | rec/s | p50 (ms) |", "|---|---|---|"]
    lines += [f"| {name} | {r['rec_per_s']:.1f} | {r['p50_ms']:.1f} |" for name, r in in_process.items()]
    return "\n".join(lines)


def main() -> None:
    if not os.environ.get("LD_PRELOAD") and os.path.exists(JEMALLOC):
        # torch eager (the reference) runs 2-3x faster with jemalloc here; the servers pick their own (MALLOC)
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, LD_PRELOAD=JEMALLOC))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime / torch threads, model only")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timed loop")
    parser.add_argument("--recordings", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.only or c.name in args.only.split(",")]
    import logging

    import onnxruntime

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser warns per node
    onnxruntime.set_default_logger_severity(3)

    work = Path(tempfile.mkdtemp(prefix="serve-speed-"))
    try:
        measure(args, configs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, configs, work: Path) -> None:
    from backend.registry import INT8_FILE, ModelRegistry
    from training.onnx_runner import OnnxRecordingModel
    from training.preprocess import PreprocessConfig, frames_to_batch

    docroot = work / "docroot"
    recordings = write_recordings(docroot, args.recordings)
    cfg = PreprocessConfig(image_size=SIZE)
    batches = [tuple(a[None] for a in frames_to_batch(
        [(docroot / r.split("?d=")[1]).read_bytes() for r in refs], FRAMES, cfg)) for refs in recordings]
    fp32, int8, torch_model = build_models(work, args.threads, batches)
    registry = ModelRegistry(work / "models")
    version = registry.add(fp32)
    registry.model_path(version).with_name(INT8_FILE).write_bytes(int8.read_bytes())

    import torch

    x, m = batches[0]
    in_process = {}
    for (name, path), spinning in itertools.product((("fp32", fp32), ("int8", int8)), (False, True)):
        runner = OnnxRecordingModel(path, intra_op_threads=args.threads, spinning=spinning)
        label = f"model only, ONNX Runtime {name}" + (", spinning" if spinning else "")
        in_process[label] = timed(lambda r=runner: r.predict(x, m), args.seconds)
    tx, tm = torch.from_numpy(x), torch.from_numpy(m)
    with torch.inference_mode():
        in_process["model only, torch eager (reference)"] = timed(lambda: torch_model(tx, tm), args.seconds)
    in_process.update(breakdown(registry.root, docroot, recordings, args.seconds))

    served = {}
    for config in configs:
        proc, url = start_backend(registry.root, docroot, config)
        try:
            served[config.name] = end_to_end(url, recordings, args.seconds * 2)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(config.name, json.dumps({k: round(v, 1) for k, v in served[config.name].items()}), flush=True)
    print(table(in_process, served))
    if args.json:
        args.json.write_text(json.dumps({"in_process": in_process, "served": served,
                                         "configs": [c.__dict__ for c in configs]}, indent=1))


if __name__ == "__main__":
    main()
