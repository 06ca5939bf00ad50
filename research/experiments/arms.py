"""What the grid runs: the benchmarks and their CPU-cheap settings, the arms, and `plan` (the run order)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Default inputs: the shared data folder beside the repository (../shared/benchmarks) or $RECMETA_SHARED/benchmarks;
# --data-root overrides both.
DATA_ROOT = Path(os.environ.get("RECMETA_SHARED") or Path(__file__).resolve().parents[2].parent / "shared") / "benchmarks"
# Default outputs: run summaries and run directories stay out of the repository; --out / --work override them.
OUT_ROOT = Path.home() / ".cache" / "recmeta" / "research"
FRACTIONS = (0.1, 0.3, 1.0)


@dataclass(frozen=True)
class BenchSettings:
    """CPU-cheap training settings of one benchmark (the grid runs on 2 CPU cores)."""

    frames: int  # frames per recording
    image_size: int
    epochs_per_step: int  # per S4L step; the supervised arm gets 3x this in one cycle
    batch_size: int  # recordings per training batch
    max_train_recordings: int = 0  # 0 = every training recording; else a seeded subsample of training subjects
    width: float = 0.5


BENCHES = {
    "nuaa": BenchSettings(frames=10, image_size=64, epochs_per_step=2, batch_size=12),
    "facemask": BenchSettings(frames=1, image_size=64, epochs_per_step=2, batch_size=32, max_train_recordings=600),
}
# any other benchmark folder: nuaa's settings (several frames per recording), overridable with --settings
DEFAULT_SETTINGS = BENCHES["nuaa"]
CV_FOLDS = {"nuaa": 5}  # subject folds of the cross-validated label budget (3 test people per split are few)
CV_LONGER = (4, 10)  # epochs per S4L step of the cross-validated longer-training variants (nuaa: 2; the thesis: 10)
# input sides of the cross-validated larger-input variants (nuaa: 64, whole 256x192 webcam frames, so a face is
# ~20 px wide and glasses a pixel; the thesis: 224)
CV_SIZES = (128,)
# frames kept per recording (DataConfig.max_preload_frames) of the cross-validated every-frame variant: the grid keeps
# `frames` (10), so training sees the same 10 of nuaa's 24 frames every epoch; the product keeps up to 32 and jitters
CV_FRAME_POOLS = (24,)
# new seeds (new label draws and initialisations) that replicate a cross-validated result found on seeds 0-4, one
# block per replication (5-9, then 10-19); the bar rows give each block apart and all seeds together, the plain
# budget's detail tables keep the first seeds.
REPLICATION_SEED_BLOCKS = ((5, 6, 7, 8, 9), tuple(range(10, 20)))
REPLICATION_SEEDS = tuple(s for block in REPLICATION_SEED_BLOCKS for s in block)
# S4L arms cross-validated besides the full recipe (docs/results.md says why)
CV_PROBES = ("sup_weight1", "best_step", "rampup", "two_steps")
QUICK = {"frames": 2, "image_size": 32, "epochs_per_step": 1, "max_train_recordings": 40}


@dataclass(frozen=True)
class Arm:
    recipe: str  # "supervised" or a key of S4L_ARMS
    fraction: float  # share of the export's training annotations kept (per label, seeded)
    seed: int
    mode: str = "mtl"
    kind: str = "multi"
    fusion: str = "concat"  # ModelConfig.fusion of the multi-image model (the thesis concatenates)
    # "all": the training subjects left out of a subsampled benchmark join as UNLABELLED recordings
    # (their annotations hidden); the labelled ones are the subsample's. S4L's regime: many unlabelled.
    pool: str = "subsample"
    fold: int = -1  # -1: the benchmark's one split (split.json); f >= 0: cross-validation split f (split_cv{f}.json)
    # "per_class": the kept annotations cover the classes first (DataConfig.label_fraction_per_class), same count
    labels: str = "random"
    augment: bool = False  # training-time image augmentation (DataConfig.augment, training/augment.py)
    epochs: int = 0  # epochs per S4L step (the supervised arm: 3x); 0 = the benchmark's BenchSettings value
    image_size: int = 0  # input side in px (DataConfig.image_size); 0 = the benchmark's BenchSettings value
    frame_pool: int = 0  # frames kept per recording (DataConfig.max_preload_frames); 0 = BenchSettings.frames

    @property
    def run_id(self) -> str:
        # concat arms keep the ids they had before fusion became an arm field (their summaries stay valid)
        fusion = "" if self.fusion == "concat" else f"-{self.fusion}"
        pool = "" if self.pool == "subsample" else f"-{self.pool}pool"
        fold = "" if self.fold < 0 else f"-cv{self.fold}"
        labels = "" if self.labels == "random" else "-perclass"
        augment = "-aug" if self.augment else ""
        epochs = f"-k{self.epochs}" if self.epochs else ""
        size = f"-px{self.image_size}" if self.image_size else ""
        frame_pool = f"-fp{self.frame_pool}" if self.frame_pool else ""
        return (f"{self.recipe}-{self.mode}-{self.kind}-f{round(self.fraction * 100):03d}-s{self.seed}"
                f"{fusion}{pool}{labels}{augment}{epochs}{size}{frame_pool}{fold}")


# S4L arms: (LossConfig changes, RecipeConfig changes) on top of the full recipe, one change each
S4L_ARMS = {
    "s4l": ({}, {}),
    "no_vat": ({"vat_weight": 0.0}, {}),
    "no_entmin": ({"entmin_weight": 0.0}, {}),
    "no_rotation": ({"rotation_weight": 0.0}, {}),
    # probes of why S4L does (not) beat supervised training (docs/results.md):
    "sup_weight1": ({"supervised_weight": 1.0}, {}),  # CE 1.0 vs 3 x 0.3 unsupervised: labels lead
    "pl_conf90": ({}, {"pseudo_label_threshold": 0.9}),  # step 2 keeps confident pseudo-labels only
    # the run ends at the step with the best validation epoch: step 3 (true labels only) must beat step 2
    "best_step": ({}, {"final_model": "best_step"}),
    # EntMin and VAT rise from ~0 over step 1 (training/rampup.py): few labels, no entrenched first guesses
    "rampup": ({"rampup": 1.0}, {}),
    # no step 3: validation fell after step 3's fine-tuning on 2-3 true labels per question (52.1 -> 49.2 at 10 %)
    "two_steps": ({}, {"steps": (1, 2)}),
}
ABLATIONS = ("no_vat", "no_entmin", "no_rotation")
PROBES = ("sup_weight1", "pl_conf90")  # (vat_xi 0.1 became the default: that probe is the s4l arm now)
ARMS = ("supervised", *S4L_ARMS)
# nuaa model variants (thesis tables 4.1-4.3), supervised at 100 %: (mode, kind, fusion)
VARIANTS = (("stl", "multi", "concat"), ("mtl", "single", "concat"), ("mtl", "multi", "mean"))


def plan(bench: str, seeds: tuple[int, ...]) -> list[Arm]:
    """Every run of a benchmark, most important first (label budget, ablations, model variants)."""
    runs = [Arm(r, f, s) for f in FRACTIONS[:2] for s in seeds for r in ("supervised", "s4l")]
    runs += [Arm(r, 0.3, s) for s in seeds for r in (*ABLATIONS, *PROBES)]
    runs += [Arm(r, 1.0, s) for s in seeds for r in ("supervised", "s4l")]
    if bench == "nuaa":  # several labels and several frames: MTL/STL, single/multi image, frame fusion
        runs += [Arm("supervised", 1.0, s, mode=m, kind=k, fusion=u) for s in seeds for m, k, u in VARIANTS]
        runs += [Arm("s4l", 1.0, s, fusion="mean") for s in seeds]  # the fusion choice under the full recipe
        # the label budget again with mean fusion, the product's default since it measured better
        runs += [Arm(r, f, s, fusion="mean") for f in FRACTIONS[:2] for s in seeds for r in ("supervised", "s4l")]
        runs += [Arm(r, f, s, fusion="mean") for f in FRACTIONS[:2] for s in seeds for r in (*ABLATIONS, *PROBES)]
    if bench in CV_FOLDS:  # the label budget cross-validated: every subject is tested once per seed
        runs += [Arm(r, f, s, fusion="mean", fold=k) for r in ("supervised", "s4l", *CV_PROBES) for f in FRACTIONS[:2]
                 for s in seeds for k in range(CV_FOLDS[bench])]
        # the diagnosis of 10 %: the same number of labels, drawn to cover the classes
        runs += [Arm(r, FRACTIONS[0], s, fusion="mean", fold=k, labels="per_class") for r in ("supervised", "s4l")
                 for s in seeds for k in range(CV_FOLDS[bench])]
        # the untried lever: image augmentation, both arms, both budgets
        runs += [Arm(r, f, s, fusion="mean", fold=k, augment=True) for f in FRACTIONS[:2]
                 for r in ("supervised", "s4l") for s in seeds for k in range(CV_FOLDS[bench])]
        # ... and longer training: twice, then the thesis's 10 epochs per step, both arms (10 % first: the budget the
        # bar missed)
        runs += [Arm(r, f, s, fusion="mean", fold=k, epochs=e) for e in CV_LONGER for f in FRACTIONS[:2]
                 for r in ("supervised", "s4l") for s in seeds for k in range(CV_FOLDS[bench])]
        # ... and larger input, both arms and budgets (a face is ~20 px wide at 64 px)
        runs += [Arm(r, f, s, fusion="mean", fold=k, image_size=px) for px in CV_SIZES for f in FRACTIONS[:2]
                 for r in ("supervised", "s4l") for s in seeds for k in range(CV_FOLDS[bench])]
        # ... with every label, supervised: what the larger input can learn at all (its ceiling)
        runs += [Arm("supervised", FRACTIONS[2], s, fusion="mean", fold=k, image_size=px) for px in CV_SIZES
                 for s in seeds for k in range(CV_FOLDS[bench])]
        # ... and every frame of a recording for the training jitter 
        runs += [Arm(r, f, s, fusion="mean", fold=k, frame_pool=n) for n in CV_FRAME_POOLS for s in seeds
                 for f in FRACTIONS[:2] for r in ("supervised", "s4l") for k in range(CV_FOLDS[bench])]
    if settings_for(bench).max_train_recordings:  # the left-out training subjects as unlabelled data
        runs += [Arm(r, f, s, pool="all") for f in FRACTIONS[:2] for s in seeds for r in ("supervised", "s4l")]
    return runs


def settings_for(bench: str) -> BenchSettings:
    """The grid's settings of a benchmark: its own when known, else DEFAULT_SETTINGS."""
    return BENCHES.get(bench, DEFAULT_SETTINGS)


def bench_paths(bench: str, data_root: Path = DATA_ROOT) -> dict[str, Path]:
    root = data_root / bench
    return {"export": root / "export.json", "label_config": root / "label_config.xml", "truth": root / "truth.csv",
            "data_root": data_root}
