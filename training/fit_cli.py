"""Command line of `python -m training.fit`: flags -> (FitConfig, resume).

Every default comes from the configuration dataclasses (training/config.py), so the CLI and the
python API (`training.fit.fit(FitConfig(...))`) start from the same values. `--config RUN/config.json` starts from
a finished run's configuration instead (the flags given explicitly override it), and `--set PATH=VALUE` reaches
every field, also those without a flag of their own (training/config_paths.py). Torch-free.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from training.config import AugmentConfig, BaselineConfig, DataConfig, FitConfig, LossConfig, ModelConfig, RecipeConfig
from training.config_paths import parse_assignment, value_at, with_values

# flag dest -> the FitConfig field it sets (what `--config` lets an explicit flag override)
DEST_FIELDS = {
    "export": "export", "label_config": "label_config", "data_root": "data_root", "out": "out", "split": "split",
    "mode": "model.mode", "model": "model.kind", "frames": "data.frames", "image_size": "data.image_size",
    "width": "model.width", "stages": "model.stages", "embed_dim": "model.embed_dim", "fusion": "model.fusion",
    "epochs_per_step": "recipe.epochs_per_step",
    "steps": "recipe.steps", "seed": "recipe.seed", "batch_size": "recipe.batch_size",
    "label_fraction": "data.label_fraction", "pseudo_label_threshold": "recipe.pseudo_label_threshold",
    "threads": "recipe.num_threads", "no_progress": "recipe.progress", "init_from": "init_from", "int8": "int8",
    "supervised_weight": "loss.supervised_weight", "entmin_weight": "loss.entmin_weight",
    "vat_weight": "loss.vat_weight", "rotation_weight": "loss.rotation_weight", "rampup": "loss.rampup",
    "vat_eps": "loss.vat_eps", "labelled_share": "recipe.labelled_share",
    "label_fraction_seed": "data.label_fraction_seed", "label_fraction_per_class": "data.label_fraction_per_class",
    "final_model": "recipe.final_model", "augment": "data.augment.enabled",
    "max_preload_frames": "data.max_preload_frames", "store": "data.store", "loader_workers": "data.loader_workers",
    "precision": "recipe.precision", "test_truth": "test_truth", "no_baseline": "baseline.enabled",
    "baseline_grid": "baseline.grid", "baseline_c": "baseline.c_values", "extend_split": "extend_split",
    "dup_threshold": "dup_threshold",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train a recording model (S4L) from a Label Studio export.")
    ap.add_argument("--config", help="start from this config.json (a run's RUN/config.json) instead of the defaults; "
                    "flags given explicitly override it")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="set any FitConfig field by its dotted path, e.g. --set recipe.lr=3e-4 --set "
                         "data.augment.zoom=0.2 (JSON value; repeatable; applied last)")
    ap.add_argument("--export", help="Label Studio export (JSON or JSON_MIN); required without --config")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's label_config.xml)")
    ap.add_argument("--data-root", help="LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ frame URLs")
    ap.add_argument("--out", help="run directory; required without --config")
    ap.add_argument("--split", help="split.json to use (default: computed and written to RUN/split.json)")
    ap.add_argument("--extend-split", help="an earlier split.json: its subjects keep their part, subjects it has "
                                           "not seen are assigned (training/split_extend.py); written to RUN/split.json")
    ap.add_argument("--dup-threshold", type=int, default=FitConfig.dup_threshold,
                    help="computed/extended split: merge subjects whose frames are within this phash distance (-1 = off)")
    ap.add_argument("--mode", choices=("mtl", "stl"), default=ModelConfig.mode)
    ap.add_argument("--model", choices=("multi", "single"), default=ModelConfig.kind)
    ap.add_argument("--frames", type=int, default=DataConfig.frames)
    ap.add_argument("--image-size", type=int, default=DataConfig.image_size)
    ap.add_argument("--width", type=float, default=ModelConfig.width)
    ap.add_argument("--stages", type=int, default=ModelConfig.stages, help="MobileNetV2 stages kept (1-7)")
    ap.add_argument("--embed-dim", type=int, default=ModelConfig.embed_dim, help="frame embedding width (0 = 1280)")
    ap.add_argument("--fusion", choices=("concat", "mean"), default=ModelConfig.fusion)
    ap.add_argument("--epochs-per-step", type=int, default=RecipeConfig.epochs_per_step)
    ap.add_argument("--steps", default="1,2,3", help="S4L steps to run, e.g. 1,2,3 or 3")
    ap.add_argument("--seed", type=int, default=RecipeConfig.seed)
    ap.add_argument("--batch-size", type=int, default=0, help="0 = multi 12 recordings / single 128 frames")
    ap.add_argument("--label-fraction", type=float, default=DataConfig.label_fraction,
                    help="keep this fraction of each label's training annotations (experiments)")
    ap.add_argument("--pseudo-label-threshold", type=float, default=RecipeConfig.pseudo_label_threshold,
                    help="step 2: min. confidence of a pseudo-label (0 = fill every gap)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    ap.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints")
    ap.add_argument("--init-from", help="model.pt whose weights start the training")
    ap.add_argument("--test-truth", help="CSV of every known label (e.g. a benchmark's truth.csv) that scores the "
                    "test split instead of its annotations; never used for training or selection")
    ap.add_argument("--int8", action="store_true",
                    help="also write model.int8.onnx (static QDQ), kept only within 0.5 points of fp32 on val")
    _add_tuning_flags(ap)
    _add_machine_flags(ap)
    group = ap.add_argument_group("linear baseline (training/baseline.py)")
    group.add_argument("--no-baseline", action="store_true",
                       help="fit no linear baseline: every label is served by the network")
    group.add_argument("--baseline-grid", type=int, default=BaselineConfig.grid,
                       help="thumbnail side of the baseline's features")
    group.add_argument("--baseline-c", default=",".join(map(str, BaselineConfig.c_values)),
                       help="L2 strengths (scikit-learn C) tried, comma-separated; chosen on validation")
    return ap


def _add_machine_flags(ap: argparse.ArgumentParser) -> None:
    """Where frames live and how batches reach the model; none of them changes a CPU run's numbers."""
    group = ap.add_argument_group("memory and devices (docs/training.md, \"Scale\")")
    group.add_argument("--store", choices=("disk", "ram"), default=DataConfig.store,
                       help="disk: frames read by index from the cache files (memory flat in the dataset size); "
                            "ram: all frames in memory")
    group.add_argument("--loader-workers", type=int, default=DataConfig.loader_workers,
                       help="0: a background thread assembles batches; N: N DataLoader worker processes")
    group.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=RecipeConfig.precision,
                       help="auto: fp32 on CPU, bf16 autocast on GPUs that support it, else fp16 with loss scaling")


def _add_tuning_flags(ap: argparse.ArgumentParser) -> None:
    """Switches that only the python API had (loss weights, VAT size, batch make-up, label subset seed, preload)."""
    group = ap.add_argument_group("loss and data tuning (defaults: training/config.py)")
    group.add_argument("--supervised-weight", type=float, default=LossConfig.supervised_weight,
                       help="weight of the masked cross-entropy (every step)")
    for name, what in (("entmin", "entropy minimisation"), ("vat", "virtual adversarial training"),
                       ("rotation", "4-way rotation task")):
        group.add_argument(f"--{name}-weight", type=float, default=getattr(LossConfig, f"{name}_weight"),
                           help=f"steps 1-2: weight of the {what} loss (0 skips its forward passes)")
    group.add_argument("--rampup", type=float, default=LossConfig.rampup,
                       help="share of step 1 over which the EntMin and VAT weights rise from ~0 (0 = thesis)")
    group.add_argument("--vat-eps", type=float, default=LossConfig.vat_eps,
                       help="VAT perturbation L2 norm per example (default: S4L's 32 for 224x224x3, scaled to the input)")
    group.add_argument("--labelled-share", type=float, default=RecipeConfig.labelled_share,
                       help="share of every training batch drawn from items with a true label (oversampled); "
                            "0 = plain shuffle")
    group.add_argument("--label-fraction-seed", type=int, default=DataConfig.label_fraction_seed,
                       help="seed of the --label-fraction subset (default: --seed)")
    group.add_argument("--label-fraction-per-class", action="store_true",
                       help="draw the --label-fraction subset one annotation per class first (same count)")
    group.add_argument("--final-model", choices=("last_step", "best_step"), default=RecipeConfig.final_model,
                       help="last_step: the best epoch of the last step (thesis); best_step: the best validation "
                            "epoch of any step")
    group.add_argument("--augment", action="store_true",
                       help="training-time image augmentation: mirror, shift/zoom, brightness/contrast per recording")
    group.add_argument("--max-preload-frames", type=int, default=DataConfig.max_preload_frames,
                       help="frames kept per recording (evenly spaced, >= --frames); training jitter picks among them")


def parse_args(argv: list[str] | None = None) -> tuple[FitConfig, bool]:
    """(configuration, resume) from the command line; a bad value exits with argparse's usage error."""
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        steps = tuple(int(s) for s in a.steps.split(","))
    except ValueError:
        ap.error(f"--steps must be comma-separated integers, got {a.steps!r}")
    if not a.config and not (a.export and a.out):
        ap.error("--export and --out are required (or --config RUN/config.json)")
    try:
        if not a.config:
            a.export, a.out = a.export or "", a.out or ""
            cfg = config_from_args(a, steps)
        else:
            cfg = _from_config_file(a, steps, _explicit_dests(argv))
        cfg = with_values(cfg, dict(parse_assignment(text) for text in a.set)) if a.set else cfg
    except (OSError, ValueError) as exc:
        ap.error(str(exc))
    return cfg, a.resume


def _explicit_dests(argv: list[str] | None) -> set[str]:
    """The dests of the flags the command line gave (not their defaults)."""
    quiet = build_parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return set(vars(quiet.parse_args(argv)))


def _from_config_file(a: argparse.Namespace, steps: tuple[int, ...], given: set[str]) -> FitConfig:
    """The file's configuration with the explicitly given flags' fields (DEST_FIELDS) taken from the flags."""
    path = Path(a.config)
    base = FitConfig.from_json(path.read_text(encoding="utf-8"))
    a.export, a.out = a.export or base.export, a.out or base.out
    flags = config_from_args(a, steps)
    values = {DEST_FIELDS[d]: value_at(flags, DEST_FIELDS[d]) for d in given if d in DEST_FIELDS}
    if os.environ.get("LABEL_STUDIO_URL"):
        values["label_studio_url"] = flags.label_studio_url
    return with_values(FitConfig.from_dict({**base.to_dict(), "label_studio_api_key": flags.label_studio_api_key}),
                       values)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def config_from_args(a: argparse.Namespace, steps: tuple[int, ...]) -> FitConfig:
    return FitConfig(
        export=a.export, out=a.out, label_config=a.label_config, data_root=a.data_root, split=a.split,
        extend_split=a.extend_split, dup_threshold=a.dup_threshold,
        init_from=a.init_from, int8=a.int8, test_truth=a.test_truth, label_studio_url=os.environ.get("LABEL_STUDIO_URL"),
        baseline=BaselineConfig(enabled=not a.no_baseline, grid=a.baseline_grid,
                                c_values=_floats(a.baseline_c, "--baseline-c")),
        label_studio_api_key=os.environ.get("LABEL_STUDIO_API_KEY"),
        data=DataConfig(frames=a.frames, image_size=a.image_size, label_fraction=a.label_fraction,
                        label_fraction_seed=a.label_fraction_seed, label_fraction_per_class=a.label_fraction_per_class,
                        max_preload_frames=a.max_preload_frames, augment=AugmentConfig(enabled=a.augment),
                        store=a.store, loader_workers=a.loader_workers),
        model=ModelConfig(kind=a.model, mode=a.mode, width=a.width, stages=a.stages, embed_dim=a.embed_dim,
                          fusion=a.fusion),
        loss=LossConfig(supervised_weight=a.supervised_weight, entmin_weight=a.entmin_weight, vat_weight=a.vat_weight,
                        rotation_weight=a.rotation_weight, vat_eps=a.vat_eps, rampup=a.rampup),
        recipe=RecipeConfig(steps=steps, epochs_per_step=a.epochs_per_step, seed=a.seed, batch_size=a.batch_size,
                            labelled_share=a.labelled_share, pseudo_label_threshold=a.pseudo_label_threshold,
                            final_model=a.final_model, precision=a.precision,
                            num_threads=a.threads, progress=not a.no_progress),
    )
