"""Active learning on the real nuaa benchmark: time from trigger to promoted model, and whether
accuracy rose after the annotators added the rest of the annotations (measured, not assumed).

1. "Annotations so far" = nuaa export.json with the annotations of a seeded fraction of the
   annotated tasks dropped. A subject-disjoint split (training.split, run on that export, saved in
   WORK/split.json and reused by later runs) fixes the validation and test subjects. An initial
   model is trained on it with training.fit and installed as current in a fresh MODEL_DIR
   (`python -m backend.models add --use`; its split.json and model.pt go where the active-learning
   jobs look for them beside the model: MODEL_DIR/versions/<version>/).
2. A fake Label Studio on loopback (legacy token check) serves the FULL export.
3. The real backend (`python -m backend`) runs on a free loopback port with that MODEL_DIR; a
   START_TRAINING webhook is sent and GET /training is polled until the job ends.
4. Printed: trigger -> result wall time with its stages, the job's validation scores of the old and
   new model (same subjects), whether it promoted, and both models' TEST-subject scores from
   `training.evaluate --truth truth.csv --subset test` with class counts.
`--serve so-far` is the control: the same warm-started job on the export WITHOUT the added
annotations, so that a rise can be told apart from the effect of the extra epochs alone.

    .venv/bin/python benchmarks/active_learning_nuaa.py [--work DIR] [--init-epochs 2] [--warm-epochs 2] [--serve so-far]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/...` puts only benchmarks/ on the path
from tests.e2e.fake_export_server import FakeLabelStudio  # noqa: E402  (shared with the tests)
from tests.e2e.server_process import free_port, wait_for_health  # noqa: E402

# LOCAL_FILES_DOCUMENT_ROOT of the nuaa frame URLs: the shared data folder beside the repository, or $RECMETA_SHARED
BENCH_ROOT = Path(os.environ.get("RECMETA_SHARED") or ROOT.parent / "shared") / "benchmarks"
NUAA = BENCH_ROOT / "nuaa"
PROJECT = 1
API_KEY = "benchmark-legacy-token"
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")


def child_env(extra: dict | None = None) -> dict:
    """Environment of the CLIs and the backend: jemalloc preloaded (docs/active-learning.md's timings were
    measured that way)."""
    env = {**os.environ, **(extra or {})}
    if JEMALLOC.exists() and str(JEMALLOC) not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(filter(None, [str(JEMALLOC), env.get("LD_PRELOAD")]))
    return env


def partial_export(tasks: list[dict], keep_fraction: float, seed: int) -> list[dict]:
    """Drop the annotations of a seeded (1 - keep_fraction) of the annotated tasks."""
    annotated = [t["id"] for t in tasks if t.get("annotations")]
    keep = set(random.Random(seed).sample(annotated, round(len(annotated) * keep_fraction)))
    return [t if t["id"] in keep or not t.get("annotations") else {**t, "annotations": []} for t in tasks]


def run_cli(args: list[str], log: Path, env: dict | None = None) -> float:
    """`python -m ARGS` with output to LOG; returns its wall time, raises with the log tail on failure."""
    started = time.monotonic()
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT,
                              env=child_env(env))
    if done.returncode:
        raise SystemExit(f"`python -m {' '.join(args[:1])}` failed ({done.returncode}):\n{log.read_text()[-1500:]}")
    return time.monotonic() - started




def trigger_and_wait(url: str, label_config: str, timeout_s: float) -> dict:
    """POST START_TRAINING, poll /training; returns the last result plus stage entry times."""
    payload = {"action": "START_TRAINING", "project": {"id": PROJECT, "label_config": label_config}}
    t0 = time.time()
    answer = requests.post(f"{url}/webhook", json=payload, timeout=30)
    answer.raise_for_status()
    stages: dict[str, float] = {}
    while time.time() - t0 < timeout_s:
        project = requests.get(f"{url}/training", timeout=30).json()["projects"].get(str(PROJECT), {})
        if project.get("stage") and project["stage"] not in stages:
            stages[project["stage"]] = time.time() - t0
        result = project.get("last_result")
        if result and result.get("started_at", 0) >= t0 - 1 and project.get("state") in ("succeeded", "failed"):
            return {"webhook_answer": answer.json(), "stages_s": stages, "seen_done_s": time.time() - t0,
                    "trigger_epoch": t0, "result": result}
        time.sleep(1.0)
    raise SystemExit(f"no job result within {timeout_s} s; stages seen: {stages}")


def job_timeline(job_dir: Path, trigger: float, result: dict) -> dict:
    """Seconds after the trigger at which each part ended, from the job's own files (the status
    poll is too coarse for sub-second parts)."""
    def at(name: str) -> float | None:
        path = job_dir / name
        return round(path.stat().st_mtime - trigger, 2) if path.is_file() else None

    evals = [t for t in (at("eval_new.json"), at("eval_current.json")) if t is not None]
    return {"worker_started": round(result["started_at"] - trigger, 2), "export_pulled": at("export.json"),
            "training_done": at("train.log"), "evaluation_done": max(evals) if evals else None,
            "result_recorded": round(result["finished_at"] - trigger, 2)}


def test_scores(model: Path, export: Path, split: Path, out: Path, threads: int) -> dict:
    run_cli(["training.evaluate", "--model", str(model), "--export", str(export), "--data-root", str(BENCH_ROOT),
             "--split", str(split), "--subset", "test", "--truth", str(NUAA / "truth.csv"),
             "--threads", str(threads), "--out", str(out)], out.with_suffix(".log"))
    doc = json.loads(out.read_text())
    return {"mean_balanced_accuracy": doc["mean_balanced_accuracy"], "n_recordings": doc.get("n_recordings"),
            "labels": {name: {"balanced_accuracy": m["balanced_accuracy"],
                              "counts": {c: v["n"] for c, v in m["per_class"].items()}}
                       for name, m in doc["labels"].items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "recmeta" / "al-nuaa",
                    help="split.json cache + one folder per run (default: %(default)s)")
    ap.add_argument("--keep-fraction", type=float, default=0.5, help="annotated tasks whose annotations stay")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init-epochs", type=int, default=2, help="epochs per S4L step of the initial model")
    ap.add_argument("--warm-epochs", type=int, default=2, help="AL_WARM_EPOCHS_PER_STEP of the job")
    ap.add_argument("--tolerance", type=float, default=0.02, help="PROMOTE_TOLERANCE")
    ap.add_argument("--serve", choices=("full", "so-far"), default="full",
                    help="export the fake Label Studio serves; so-far = control: same job, no new annotations")
    ap.add_argument("--timeout-s", type=float, default=3600)
    args = ap.parse_args(argv)

    load_start = os.getloadavg()
    run = args.work / time.strftime("run-%Y%m%dT%H%M%S")
    model_dir = run / "models"
    model_dir.mkdir(parents=True)
    full = json.loads((NUAA / "export.json").read_text())
    so_far = partial_export(full, args.keep_fraction, args.seed)
    so_far_path, full_path = run / "export_so_far.json", run / "export_full.json"
    so_far_path.write_text(json.dumps(so_far))
    full_path.write_text(json.dumps(full))
    label_config = NUAA / "label_config.xml"

    split = args.work / "split.json"
    if not split.is_file():
        run_cli(["training.split", "--export", str(so_far_path), "--label-config", str(label_config),
                 "--seed", str(args.seed), "--out", str(split)], run / "split.log")
    fit_args = ["--image-size", str(args.image_size), "--frames", str(args.frames), "--threads", str(args.threads),
                "--seed", str(args.seed)]
    # Cached like the split (same settings -> same model); a run only measures the job.
    init_run = args.work / (f"initial-seed{args.seed}-keep{args.keep_fraction}-e{args.init_epochs}-"
                            f"{args.image_size}px-{args.frames}f")
    init_s = None
    if not (init_run / "model.pt").is_file():
        init_s = run_cli(["training.fit", "--export", str(so_far_path), "--label-config", str(label_config),
                          "--data-root", str(BENCH_ROOT), "--split", str(split), "--out", str(init_run),
                          "--no-progress", "--epochs-per-step", str(args.init_epochs), *fit_args],
                         run / "initial_fit.log")
    # fit --split does not copy the split into the run; `models add` carries split.json + model.pt
    (init_run / "split.json").write_bytes(split.read_bytes())
    run_cli(["backend.models", "--model-dir", str(model_dir), "add", str(init_run / "model.onnx"),
             "--version", "initial", "--use"], run / "models_add.log")

    server = FakeLabelStudio(full if args.serve == "full" else so_far, API_KEY)
    port = free_port()
    env = {"MODEL_DIR": str(model_dir), "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": API_KEY,
           "LOCAL_FILES_DOCUMENT_ROOT": str(BENCH_ROOT), "PROMOTE_TOLERANCE": str(args.tolerance),
           "RETRAIN_EVERY": "0", "AL_WARM_EPOCHS_PER_STEP": str(args.warm_epochs),
           "AL_FIT_ARGS": shlex.join(fit_args), "WORKERS": "1", "ONNX_THREADS": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(run / "prometheus"), "LOG_LEVEL": "WARNING"}
    backend_log = open(run / "backend.log", "w")
    backend = subprocess.Popen([sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)],
                               stdout=backend_log, stderr=subprocess.STDOUT, env=child_env(env))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, backend, 120.0, log=run / "backend.log")
        job = trigger_and_wait(url, label_config.read_text(), args.timeout_s)
    finally:
        backend.terminate()
        backend.wait(30)
        backend_log.close()
        server.close()

    result = job["result"]
    job_dir = model_dir / "active_learning" / "projects" / str(PROJECT) / "jobs" / result["job_id"]
    job_run = job_dir / "run"
    scores = {"old": test_scores(init_run / "model.onnx", full_path, split, run / "test_old.json", args.threads),
              "new": test_scores(job_run / "model.onnx", full_path, split, run / "test_new.json", args.threads)
              if (job_run / "model.onnx").is_file() else None}  # a failed job leaves no model
    report = {
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else argv,
        "settings": {**vars(args), "work": str(args.work), "fit_args": fit_args},
        "annotated_tasks": {"so_far": sum(bool(t["annotations"]) for t in so_far),
                            "full": sum(bool(t["annotations"]) for t in full), "tasks": len(full)},
        "split_subjects": json.loads(split.read_text())["subjects"],
        "initial_model": str(init_run), "initial_fit_s": None if init_s is None else round(init_s, 1),
        "trigger_to_result_s": round(result["finished_at"] - job["trigger_epoch"], 1),
        "stages_first_polled_at_s": {k: round(v, 1) for k, v in job["stages_s"].items()},
        "parts_ended_at_s": job_timeline(job_dir, job["trigger_epoch"], result),
        "export_requests": len(server.requests),
        "job": {k: result.get(k) for k in ("status", "error", "promoted", "version", "promotion_reason",
                                           "warm_start", "export_tasks", "metrics")},
        "test": scores,
        "ld_preload": child_env().get("LD_PRELOAD"),
        "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
    }
    (run / "report.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str))
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
