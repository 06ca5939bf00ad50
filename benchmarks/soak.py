"""Soak test of the served backend under hostile input and a slow frame host (loopback only).

Starts the real server (`python -m backend`, one worker) on a tiny model with local frames, and a
loopback frame host that trickles one byte every 0.5 s. 8 clients then send /predict batches of
1-4 tasks for --minutes: 20 % of the tasks are bad in the ways of docs/backend.md "Hardening"
(NUL, lone surrogate, malformed URL, frame path escaping the root, missing frames key, a task
that is no object), 2 % have their frames on the slow host, and some requests are bad as a whole
(params not an object, /webhook action a list, /setup hostname a number, a JSON list body, /setup
of a new project with a 256 KB config). Prints requests/s, answers by status and task errors by
reason, p50/p95/p99 latency of good tasks (split by whether their request also held a slow-host
task), the server's RSS at 1 minute and at the end, and checks: no 5xx, no good task lost or
answered differently from when it is sent alone.

    nice -n 10 .venv/bin/python benchmarks/soak.py [--minutes 10] [--clients 8]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python benchmarks/...` puts only benchmarks/ on the path
from tests.backend_fixtures import TrickleServer, build_tiny_model, grey_image_bytes, write_recording  # noqa: E402
from tests.e2e.server_process import free_port, stop_process_group, wait_for_health  # noqa: E402

FRAME_TIMEOUT_S = 2.0  # the server's FRAME_TIMEOUT_S here: the bound a slow-host task can add
BAD_TASKS = {  # kind -> frames of a task that must fail alone
    "nul": ["/data/local-files/?d=rec0/00.png\x00"], "surrogate": ["\ud800.png"], "malformed_url": ["http://[bad"],
    "escape": ["/data/local-files/?d=../secret.png"], "missing_file": ["/data/local-files/?d=rec0/none.png"],
}
BAD_REQUESTS = {  # kind -> (path, body): must be a 4xx
    "params_not_object": ("/predict", {"tasks": [], "params": "x"}),
    "webhook_action_list": ("/webhook", {"action": ["x"]}),
    "setup_hostname_number": ("/setup", {"hostname": 5}),
    "body_is_a_list": ("/predict", ["x"] * 1000),
}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = collections.Counter()
        self.reasons = collections.Counter()
        self.problems = collections.Counter()  # what must stay 0
        self.good_latency = {False: [], True: []}  # by "request also held a slow-host task"
        self.requests = 0


def make_request(rng: random.Random, recordings: dict, slow_url: str, project_seq) -> tuple[str, object, list]:
    """(path, body, [expected per task: recording name, 'bad' or 'slow'])."""
    if rng.random() < 0.03:
        kind = rng.choice(sorted(BAD_REQUESTS))
        return BAD_REQUESTS[kind][0], BAD_REQUESTS[kind][1], [f"request:{kind}"]
    if rng.random() < 0.01:
        project = next(project_seq)
        config = (ROOT / "label_config.xml").read_text().replace("<View>", f"<View><!-- {'p' * (256 << 10)} -->", 1)
        return "/setup", {"project": f"{project}.1", "schema": config}, ["request:setup_new_project"]
    tasks, expected = [], []
    for i in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.20:
            kind = rng.choice(sorted(BAD_TASKS) + ["no_frames_key", "not_an_object"])
            task = 5 if kind == "not_an_object" else {"id": i, "data": {} if kind == "no_frames_key"
                                                                      else {"frames": BAD_TASKS[kind]}}
            tasks.append(task)
            expected.append("bad")
        elif roll < 0.22:
            tasks.append({"id": i, "data": {"frames": [f"{slow_url}/{rng.random()}.png"]}})
            expected.append("slow")
        else:
            name = rng.choice(sorted(recordings))
            tasks.append({"id": i, "data": {"frames": recordings[name]}})
            expected.append(name)
    return "/predict", {"tasks": tasks}, expected


def client_loop(url: str, seed: int, stop_at: float, tally: Tally, recordings: dict, alone: dict, slow_url: str,
                project_seq) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.monotonic() < stop_at:
            path, body, expected = make_request(rng, recordings, slow_url, project_seq)
            started = time.monotonic()
            response = http.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
            took = time.monotonic() - started
            with tally.lock:
                tally.requests += 1
                tally.statuses[f"{path} {response.status_code}"] += 1
                if response.status_code >= 500:
                    tally.problems["5xx"] += 1
                if expected[0].startswith("request:"):
                    if expected[0] != "request:setup_new_project" and not 400 <= response.status_code < 500:
                        tally.problems[f"{expected[0]} not a 4xx"] += 1
                    continue
                results = response.json()["results"]
                with_slow = "slow" in expected
                for want, entry in zip(expected, results):
                    if "error" in entry:
                        tally.reasons[entry["error"].split(":")[0]] += 1
                    if want in alone:
                        tally.good_latency[with_slow].append(took)
                        if entry.get("result") != alone[want]:
                            tally.problems["good task lost or changed"] += 1
                    elif "result" in entry:
                        tally.problems[f"{want} task answered"] += 1


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return f"{pick(0.50):7.1f} {pick(0.95):7.1f} {pick(0.99):7.1f}   ({len(values)} tasks)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    import httpx

    work = Path(tempfile.mkdtemp(prefix="recmeta-soak-"))
    docroot, models = work / "docroot", work / "models"
    recordings = {f"rec{i}": write_recording(docroot, f"rec{i}", [30 + 50 * i] * 8, size=(256, 160)) for i in range(4)}
    (work / "secret.png").write_bytes(grey_image_bytes(1))
    build_tiny_model(work / "model.onnx", frames=8, image_size=64)
    subprocess.run([sys.executable, "-m", "backend.models", "add", str(work / "model.onnx")], check=True,
                   env={**os.environ, "MODEL_DIR": str(models)}, cwd=ROOT, capture_output=True)
    slow = TrickleServer(grey_image_bytes(100), interval_s=0.5)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MODEL_DIR": str(models), "LOCAL_FILES_DOCUMENT_ROOT": str(docroot), "WORKERS": "1",
           "ALLOWED_FRAME_HOSTS": "127.0.0.1", "FRAME_TIMEOUT_S": str(FRAME_TIMEOUT_S), "LOG_LEVEL": "WARNING",
           "ONNX_THREADS": "1", "PROMETHEUS_MULTIPROC_DIR": str(work / "prom")}
    log = work / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_health(url, server, log=log)
        alone = {name: httpx.post(f"{url}/predict", json={"tasks": [{"id": 1, "data": {"frames": refs}}]},
                                  timeout=60).json()["results"][0]["result"] for name, refs in recordings.items()}
        tally, project_seq = Tally(), iter(range(1 << 30))
        started = time.monotonic()
        stop_at = started + args.minutes * 60
        threads = [threading.Thread(target=client_loop, args=(url, seed, stop_at, tally, recordings, alone, slow.url,
                                                              project_seq)) for seed in range(args.clients)]
        for t in threads:
            t.start()
        rss_1min = None
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            if rss_1min is None and time.monotonic() - started >= min(60, args.minutes * 30):
                rss_1min = rss_mb(server.pid)
        elapsed = time.monotonic() - started
        rss_end = rss_mb(server.pid)
    finally:
        stop_process_group(server)
        slow.close()
    print(f"soak: {args.clients} clients, {elapsed / 60:.1f} min, FRAME_TIMEOUT_S={FRAME_TIMEOUT_S}, "
          f"{tally.requests / elapsed:.1f} requests/s ({tally.requests} requests)")
    print("answers:", ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items())))
    print("task errors by reason:", ", ".join(f"{k}: {v}" for k, v in sorted(tally.reasons.items())))
    print("good-task latency (ms)                      p50     p95     p99")
    print("  request without a slow-host task     ", percentiles(tally.good_latency[False]))
    print("  request also holding a slow-host task", percentiles(tally.good_latency[True]))
    print("  all good tasks                       ", percentiles(tally.good_latency[False] + tally.good_latency[True]))
    growth = (rss_end / rss_1min - 1) * 100
    print(f"server RSS: {rss_1min:.0f} MB at 1 min, {rss_end:.0f} MB at the end ({growth:+.1f} %)")
    print("must be 0:", dict(tally.problems) or "all 0 (no 5xx, no good task lost or changed, every bad one refused)")
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main())
