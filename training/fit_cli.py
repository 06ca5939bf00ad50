"""Command line of `python -m training.fit`: flags -> (FitConfig, resume).

Every default comes from the configuration dataclasses (training/config.py), so the CLI and the
python API (`training.fit.fit(FitConfig(...))`) start from the same values. Torch-free.
"""
from __future__ import annotations

import argparse
import os

from training.config import AugmentConfig, DataConfig, FitConfig, LossConfig, ModelConfig, RecipeConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train a recording model (S4L) from a Label Studio export.")
    ap.add_argument("--export", required=True, help="Label Studio export (JSON or JSON_MIN)")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's label_config.xml)")
    ap.add_argument("--data-root", help="LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ frame URLs")
    ap.add_argument("--out", required=True, help="run directory")
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
    ap.add_argument("--int8", action="store_true",
                    help="also write model.int8.onnx (static QDQ), kept only within 0.5 points of fp32 on val")
    _add_tuning_flags(ap)
    return ap


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
                       help="seed of the --label-fraction subset")
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
    try:
        cfg = config_from_args(a, steps)
    except ValueError as exc:
        ap.error(str(exc))
    return cfg, a.resume


def config_from_args(a: argparse.Namespace, steps: tuple[int, ...]) -> FitConfig:
    return FitConfig(
        export=a.export, out=a.out, label_config=a.label_config, data_root=a.data_root, split=a.split,
        extend_split=a.extend_split, dup_threshold=a.dup_threshold,
        init_from=a.init_from, int8=a.int8, label_studio_url=os.environ.get("LABEL_STUDIO_URL"),
        label_studio_api_key=os.environ.get("LABEL_STUDIO_API_KEY"),
        data=DataConfig(frames=a.frames, image_size=a.image_size, label_fraction=a.label_fraction,
                        label_fraction_seed=a.label_fraction_seed, label_fraction_per_class=a.label_fraction_per_class,
                        max_preload_frames=a.max_preload_frames, augment=AugmentConfig(enabled=a.augment)),
        model=ModelConfig(kind=a.model, mode=a.mode, width=a.width, fusion=a.fusion),
        loss=LossConfig(supervised_weight=a.supervised_weight, entmin_weight=a.entmin_weight, vat_weight=a.vat_weight,
                        rotation_weight=a.rotation_weight, vat_eps=a.vat_eps, rampup=a.rampup),
        recipe=RecipeConfig(steps=steps, epochs_per_step=a.epochs_per_step, seed=a.seed, batch_size=a.batch_size,
                            labelled_share=a.labelled_share, pseudo_label_threshold=a.pseudo_label_threshold,
                            final_model=a.final_model,
                            num_threads=a.threads, progress=not a.no_progress),
    )
