"""`torchrun --nproc_per_node 2 -m training.fit`: two CPU processes (gloo), rank 0 writes the run."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.dataset import RecordingDataset, load_recordings
from training.config import DataConfig
from training.export_reader import read_export
from training.fit import load_model
from training.metrics import evaluate
from training.schema import load_label_config
from training.synthetic import generate
from training.trainer import softmax

TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


def _run(cmd, env, timeout):
    """Run cmd in its own process group; on timeout kill the whole group (torchrun's workers too)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s:\n{out[-2000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun is not installed")
def test_two_process_training_writes_one_run_with_gathered_metrics(tmp_path):
    generate(tmp_path / "syn", recordings=20, subjects=10, frames=2, size=32, label_fraction=0.7, seed=4)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "training.fit",
           "--export", str(tmp_path / "syn" / "export.json"), "--data-root", str(tmp_path), "--out", str(run),
           "--frames", "2", "--image-size", "32", "--epochs-per-step", "1", "--steps", "1", "--batch-size", "4",
           "--threads", "1", "--no-progress"]
    proc = _run(cmd, env, timeout=150)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    for name in ("config.json", "split.json", "metrics.json", "model.pt", "model.onnx", "report.html"):
        assert (run / name).is_file(), name
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in log if e["phase"] in ("train", "val")] == ["train", "val"]  # rank 0 only
    assert proc.stdout.count("step 1 epoch 1:") == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step1_epoch1.pt"]

    # The gathered validation metrics equal a one-process evaluation of the saved model.
    schema = load_label_config()
    recs = read_export(tmp_path / "syn" / "export.json", schema).recordings
    val_ids = json.loads((run / "split.json").read_text())["recordings"]["val"]
    fetch = lambda ref: (tmp_path / ref.split("?d=", 1)[1]).read_bytes()
    store = load_recordings(recs, schema, DataConfig(frames=2, image_size=32), fetch, None, progress=False)
    rows = store.rows(val_ids)
    ds = RecordingDataset(store, rows, store.labels, 2)
    model = load_model(run / "model.pt")
    with torch.no_grad():
        logits = model(torch.stack([ds[i][0] for i in range(len(ds))]), torch.stack([ds[i][1] for i in range(len(ds))]))
    truth = {n: store.labels[rows, i] for i, n in enumerate(schema.names)}
    want = evaluate(schema, truth, softmax({k: v.numpy() for k, v in logits.items()}))
    got = json.loads((run / "metrics.json").read_text())["network"]["val"]  # model.pt is the network
    assert got["mean_balanced_accuracy"] == pytest.approx(want["mean_balanced_accuracy"])
    for name in schema.names:
        assert got["labels"][name]["n"] == want["labels"][name]["n"]
