"""CLI: `python -m research.experiments [--bench NAME_OR_FOLDER] [--out DIR] [--only RUN_IDS] [--doc FILE] ...`.

--bench takes a benchmark's name under --data-root (nuaa, facemask) or any benchmark folder (export.json,
label_config.xml, truth.csv, frames); an unknown benchmark trains with arms.DEFAULT_SETTINGS, changed by --settings.
Outputs go to --out and --work, outside the repository by default (arms.OUT_ROOT)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __doc__ as package_doc
from .arms import BENCHES, CV_FOLDS, DATA_ROOT, OUT_ROOT
from .bn_check import bn_check
from .doc import rewrite_doc
from .runner import run_bench
from .step_check import step_check


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m research.experiments", description=package_doc.split("\n")[0])
    ap.add_argument("--bench", default="all",
                    help=f"a benchmark under --data-root ({', '.join(BENCHES)}), a benchmark folder, or all")
    ap.add_argument("--out", default=str(OUT_ROOT), help="summaries, splits and plots (default: %(default)s)")
    ap.add_argument("--work", default=str(OUT_ROOT / "work"),
                    help="run directories: checkpoints, model.onnx (default: %(default)s)")
    ap.add_argument("--data-root", default=str(DATA_ROOT), help="folder holding the benchmarks (default: %(default)s)")
    ap.add_argument("--settings", type=json.loads, default={},
                    help='JSON object of BenchSettings fields to change, e.g. \'{"frames": 1, "image_size": 128}\'')
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", help="comma-separated run ids (as in the summaries) to run")
    ap.add_argument("--quick", action="store_true", help="tiny settings: checks the pipeline, measures nothing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", help="also (re)write this markdown file from every summary under --out")
    ap.add_argument("--doc-only", action="store_true", help="write --doc, run nothing")
    ap.add_argument("--bn-check", metavar="RUN_ID", help="BatchNorm statistics check of a finished run of --bench; runs nothing else")
    ap.add_argument("--step-check", metavar="GLOB", help="score each step of the finished cross-validated S4L runs of "
                    "--bench whose ids match GLOB on truth.csv, and their pseudo-labels; runs nothing else")
    a = ap.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in a.seeds.split(","))
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {a.seeds!r}")
    only = set(a.only.split(",")) if a.only else None
    if a.bench != "all" and (Path(a.bench) / "export.json").exists():  # a benchmark folder
        a.data_root, a.bench = str(Path(a.bench).resolve().parent), Path(a.bench).resolve().name
    if a.bn_check:
        if a.bench == "all":
            ap.error("--bn-check needs --bench nuaa or facemask")
        print(json.dumps(bn_check(a.bench, a.bn_check, Path(a.out), Path(a.work), Path(a.data_root)), indent=1))
        return
    if a.step_check:
        if a.bench not in CV_FOLDS:
            ap.error(f"--step-check needs --bench {' or '.join(CV_FOLDS)} (cross-validated runs)")
        done = step_check(a.bench, a.step_check, Path(a.out), Path(a.work), Path(a.data_root))
        print(f"{len(done)} runs checked: {Path(a.out) / a.bench / 'step_check'}")
        return
    for bench in () if a.doc_only else (BENCHES if a.bench == "all" else (a.bench,)):
        if not (Path(a.data_root) / bench / "export.json").exists():
            print(f"{bench}: no export.json under {a.data_root}/{bench}; skipped", file=sys.stderr)
            continue
        run_bench(bench, Path(a.out), Path(a.work), seeds, a.quick, only, a.threads, Path(a.data_root), a.settings)
    if a.doc:
        rewrite_doc(Path(a.out), Path(a.doc), Path(a.data_root))


if __name__ == "__main__":
    main()
