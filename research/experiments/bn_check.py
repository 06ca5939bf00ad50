"""BatchNorm check of a finished run: eval-mode accuracy of each kept checkpoint with the stored running
statistics vs statistics re-estimated on clean training recordings (`--bn-check RUN_ID`), and its doc table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.metrics import evaluate

from .arms import DATA_ROOT, bench_paths
from .run_inputs import run_inputs
from .runner import softmax


def bn_check(bench: str, run_id: str, out: Path, work: Path, data_root: Path = DATA_ROOT) -> dict:
    """Validation and test balanced accuracy (truth.csv) of each kept checkpoint, in eval mode with the
    stored BatchNorm running statistics vs. with statistics re-estimated on clean training recordings
    (same weights). A gap means the stored statistics, not the weights, decide eval-mode predictions,
    and eval mode is what pseudo-labelling (step 2), model selection and serving use."""
    import torch

    from training.dataset import RecordingDataset
    from training.fit import build_model

    run = work / bench / "runs" / run_id
    inputs = run_inputs(run, bench_paths(bench, data_root)["truth"])
    cfg, schema, store = inputs.cfg, inputs.schema, inputs.store

    def batches(part: str):
        ds = RecordingDataset(store, inputs.rows(part), store.labels, cfg.data.frames)
        items = [ds[i] for i in range(len(ds))]
        return [(torch.stack([it[0] for it in items[i:i + 32]]), torch.stack([it[1] for it in items[i:i + 32]]))
                for i in range(0, len(items), 32)]

    def truth_of(part: str) -> dict[str, np.ndarray]:
        return {n: inputs.truth[inputs.rows(part), i] for i, n in enumerate(schema.names)}

    scored = {part: (batches(part), truth_of(part)) for part in ("val", "test")}
    train = batches("train")
    result = {}
    for ckpt in sorted((run / "checkpoints").glob("step*_epoch*.pt")):
        model = build_model(schema, cfg.model, cfg.data.frames)
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["model"])
        row = {}
        for how in ("stored", "re-estimated"):
            if how == "re-estimated":  # cumulative average over one clean pass, dropout off
                bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
                for m in bns:
                    m.reset_running_stats()
                    m.momentum = None
                    m.train()
                with torch.no_grad():
                    for x, mask in train:
                        model(x, mask)
            model.eval()
            for part, (data, y) in scored.items():
                with torch.no_grad():
                    logits = [model(x, mask) for x, mask in data]
                probs = {n: softmax(torch.cat([lo[n] for lo in logits]).numpy()) for n in schema.names}
                m = evaluate(schema, y, probs)
                row[f"{part} {how}"] = {"mean_balanced_accuracy": m["mean_balanced_accuracy"],
                                        "predicted": {n: np.bincount(p.argmax(1), minlength=p.shape[1]).tolist()
                                                      for n, p in probs.items()}}
        result[ckpt.stem] = row
    path = out / bench / "bn_check" / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def bn_check_section(bench: str, out: Path) -> list[str]:
    files = sorted((out / bench / "bn_check").glob("*.json"))
    if not files:
        return []
    lines = [f"### BatchNorm check ({bench})", "",
             "Validation and test mean balanced accuracy % (truth.csv) of the kept checkpoints in eval mode: with the stored "
             "BatchNorm running statistics vs re-estimated on clean training recordings (same weights); "
             "predicted class counts in brackets. Command: `python -m research.experiments --bench "
             f"{bench} --bn-check RUN_ID`.", "",
             "| run | checkpoint | val, stored stats | val, re-estimated | test, stored stats | test, re-estimated |",
             "|---|---|---|---|---|---|"]
    for f in files:
        for ckpt, row in json.loads(f.read_text(encoding="utf-8")).items():
            cells = [f"{100 * r['mean_balanced_accuracy']:.1f} ({'; '.join('/'.join(map(str, v)) for v in r['predicted'].values())})"
                     for r in (row[f"{p} {h}"] for p in ("val", "test") for h in ("stored", "re-estimated"))]
            lines.append(f"| {f.stem} | {ckpt} | " + " | ".join(cells) + " |")
    return lines + [""]
