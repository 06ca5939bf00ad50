"""The figures of docs/results.md: label-budget curve and reliability diagram (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .summaries import spread


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on the training machines
    import matplotlib.pyplot as plt

    return plt


def plot_label_budget(bench: str, curve: dict, path: Path) -> None:
    """curve: {fraction: (supervised values, S4L values)}; mean ± std over seeds per arm."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, name in enumerate(("supervised only", "S4L")):
        xs = [f * 100 for f, v in curve.items() if v[i]]
        stats = [spread(v[i]) for v in curve.values() if v[i]]
        if xs:
            ax.errorbar(xs, [100 * m for m, _, _ in stats], yerr=[100 * s for _, s, _ in stats], marker="o", capsize=4, label=name)
    ax.set(xscale="log", xlabel="% of the export's training labels kept", ylabel="test mean balanced acc. (%)",
           title=f"{bench}: label budget (mean ± std over seeds)")
    ax.set_xticks([10, 30, 100], ["10", "30", "100"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(bench: str, runs: list[dict], path: Path) -> None:
    """Pooled over seeds and labels: accuracy vs confidence per bin, served (fitted T) and T = 1."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for key, name in (("t1", "T = 1"), ("fitted", "served (fitted T)")):
        count = np.zeros(10)
        conf, acc = np.zeros(10), np.zeros(10)
        for s in runs:
            for bins in s["test"]["calibration"][key].values():
                for i, b in enumerate(bins["bins"]):
                    if b["count"]:
                        count[i] += b["count"]
                        conf[i] += b["count"] * b["confidence"]
                        acc[i] += b["count"] * b["accuracy"]
        keep = count > 0
        ax.plot(conf[keep] / count[keep], acc[keep] / count[keep], "o-", label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"{bench}: {runs[0]['arm']['recipe']} {round(runs[0]['arm']['fraction'] * 100)} %, test, {len(runs)} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
