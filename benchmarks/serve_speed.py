"""Serving speed on CPU: model-only ONNX Runtime fp32 / static-int8 / torch eager, and the
backend end to end (/predict p50 for one task, 8 concurrent clients).

Setup: width-0.5 multi-image RecordingModel at 224 px, 10 frames per recording, untrained weights
(speed does not depend on them), frames are 1280x800 JPEGs read from a local-files document root.

    .venv/bin/python benchmarks/serve_speed.py [--threads 2] [--seconds 5] [--workers 1]

Targets (docs/backend.md): fp32 >= 60 rec/s, int8 >= 90 rec/s, /predict p50 <= 30 ms,
8 clients >= 35 rec/s with zero errors. On a shared machine read every figure as +-30 %.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FRAMES, SIZE, WIDTH = 10, 224, 0.5
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"  # what the serving image preloads


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


def build_models(out: Path, threads: int, batches) -> tuple[Path, Path, Path, object]:
    """Export the untrained model (fp32) and static QDQ int8 twins: as training.quantize makes it, and
    after ONNX Runtime's recommended quant_pre_process. Returns (fp32, int8, int8_pre, torch model)."""
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

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
    quant_pre_process(str(fp32), str(out / "pre.onnx"))  # shape inference + constant folding
    int8_pre = out / "model.int8-pre.onnx"
    quantize_model(out / "pre.onnx", int8_pre, batches, evaluate=lambda path: 1.0)
    return fp32, int8, int8_pre, model


def throughput(run, seconds: float) -> float:
    """Recordings per second of `run()` (one recording per call) after a warm-up."""
    for _ in range(3):
        run()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run()
        count += 1
    return count / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_backend(model_dir: Path, docroot: Path, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = dict(os.environ, MODEL_DIR=str(model_dir), LOCAL_FILES_DOCUMENT_ROOT=str(docroot), WORKERS=str(workers),
               ONNX_THREADS=str(threads), LOG_LEVEL="WARNING", PYTHON=sys.executable, HOST="127.0.0.1",
               PORT=str(port), PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="bench-prom-"))
    proc = subprocess.Popen(["sh", str(ROOT / "scripts" / "docker_entrypoint.sh")], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("backend did not start")


def predict_once(client, url: str, refs: list[str], task_id: int) -> bool:
    body = {"tasks": [{"id": task_id, "data": {"frames": refs}}], "project": "1.0"}
    response = client.post(url + "/predict", json=body, timeout=30)
    return response.status_code == 200 and "result" in response.json()["results"][0]


def end_to_end(url: str, recordings: list[list[str]], seconds: float, clients: int) -> dict:
    import httpx

    with httpx.Client() as client:
        for refs in recordings:  # warm-up: model load, first decode of each file
            predict_once(client, url, refs, 0)
        latencies = []
        for i in range(40):
            started = time.perf_counter()
            predict_once(client, url, recordings[i % len(recordings)], i)
            latencies.append(time.perf_counter() - started)
    done, errors, stop = [0], [0], time.perf_counter() + seconds
    lock = threading.Lock()

    def client_loop(k: int) -> None:
        with httpx.Client() as client:
            i = k
            while time.perf_counter() < stop:
                ok = predict_once(client, url, recordings[i % len(recordings)], i)
                with lock:
                    done[0] += ok
                    errors[0] += not ok
                i += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"predict_p50_ms": 1000 * statistics.median(latencies),
            "predict_p90_ms": 1000 * statistics.quantiles(latencies, n=10)[-1],
            f"clients{clients}_rec_per_s": done[0] / elapsed, f"clients{clients}_errors": errors[0]}


def main() -> None:
    if not os.environ.get("LD_PRELOAD") and os.path.exists(JEMALLOC):
        # same allocator as the image; glibc malloc makes torch eager ~5x slower (docs/cpu-facts)
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, LD_PRELOAD=JEMALLOC))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime / torch threads")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timed loop")
    parser.add_argument("--workers", type=int, default=1, help="backend worker processes")
    parser.add_argument("--recordings", type=int, default=8)
    args = parser.parse_args()
    import logging

    import onnxruntime

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser warns per node
    onnxruntime.set_default_logger_severity(3)

    from backend.registry import ModelRegistry
    from training.onnx_runner import OnnxRecordingModel
    from training.preprocess import PreprocessConfig, frames_to_batch

    work = Path(tempfile.mkdtemp(prefix="serve-speed-"))
    docroot = work / "docroot"
    recordings = write_recordings(docroot, args.recordings)
    cfg = PreprocessConfig(image_size=SIZE)
    batches = [tuple(a[None] for a in frames_to_batch(
        [(docroot / r.split("?d=")[1]).read_bytes() for r in refs], FRAMES, cfg)) for refs in recordings]
    fp32, int8, int8_pre, torch_model = build_models(work, args.threads, batches)
    x, m = batches[0]

    import torch

    results = {"cpu_threads": args.threads, "workers": args.workers}
    for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8), ("onnx_int8_preprocessed", int8_pre)):
        runner = OnnxRecordingModel(path, intra_op_threads=args.threads)
        results[f"{name}_rec_per_s"] = throughput(lambda: runner.predict(x, m), args.seconds)
    tx, tm = torch.from_numpy(x), torch.from_numpy(m)
    with torch.inference_mode():
        results["torch_eager_rec_per_s"] = throughput(lambda: torch_model(tx, tm), args.seconds)

    registry = ModelRegistry(work / "models")
    registry.add(fp32)
    proc, url = start_backend(registry.root, docroot, args.workers, args.threads)
    try:
        results.update(end_to_end(url, recordings, args.seconds * 2, clients=8))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
