"""Training configuration: frozen dataclasses with documented defaults (thesis 3.2 unless noted).

A run writes its FitConfig to RUN/config.json; `FitConfig.from_json` reads it back, so a run can be
repeated or resumed from that file alone.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time image augmentation (training/augment.py); one draw per recording."""

    enabled: bool = False  # off: it did not help S4L on nuaa and cost it 6 points at 30 % (docs/results.md)
    flip: bool = True  # horizontal mirror with probability 1/2
    shift: float = 0.1  # translation up to this share of the side, each axis
    zoom: float = 0.1  # scale factor in [1 - zoom, 1 + zoom]
    brightness: float = 0.1  # added offset in [-b, b] (inputs span [-1, 1))
    contrast: float = 0.2  # gain in [1 - c, 1 + c] around 0 (mid grey)

    def __post_init__(self) -> None:
        for name in ("shift", "zoom", "brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.augment.{name} must be in [0, 1); got {value}")


@dataclass(frozen=True)
class DataConfig:
    frames: int = 10  # frames per recording given to the multi-image model (thesis Dataset_v2)
    image_size: int = 224  # square side after pad + resize (thesis 3.1.3)
    standardize: bool = False  # subtract mean / divide by std after the [-1, 127/128] rescale
    mean: float = 0.0
    std: float = 1.0
    cache_dir: str = ".cache/recordings"  # preprocessed frames per recording; relative = to the run's parent
    max_preload_frames: int = 32  # frames kept per recording (evenly spaced); the jitter picks among them
    jitter: bool = True  # training: random frame inside each bin instead of the bin's middle one
    label_fraction: float = 1.0  # experiments: keep this fraction of each label's training annotations
    label_fraction_seed: int | None = None  # None = the run's recipe.seed, so --seed alone varies the labels too
    # research override (research/experiments' per-class arm; product runs leave it off): draw the kept annotations
    # one per class first (as many classes as the count allows), so the same NUMBER of labels covers the classes
    label_fraction_per_class: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training batches only
    # "disk": frames read by index from the per-recording cache files, memory flat in the dataset size;
    # "ram": all frames held in memory (training/frame_store.py). Both give the same numbers.
    store: str = "disk"
    # 0: one background thread assembles the next batches while the model runs; N: N DataLoader worker
    # processes (GPU runs with cores to spare). Batches are the same either way (training/batch_feed.py).
    loader_workers: int = 0

    def __post_init__(self) -> None:
        _check_choice("data.store", self.store, ("disk", "ram"))
        if self.loader_workers < 0:
            raise ValueError(f"data.loader_workers must be >= 0; got {self.loader_workers}")
        if self.frames < 1 or self.max_preload_frames < self.frames:
            raise ValueError(f"data.frames must be >= 1 and <= data.max_preload_frames; got {self.frames}, "
                             f"{self.max_preload_frames}")
        if not 0.0 <= self.label_fraction <= 1.0:
            raise ValueError(f"data.label_fraction must be in [0, 1]; got {self.label_fraction}")


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "multi"  # "multi": N frames per recording in; "single": one frame, recordings average
    mode: str = "mtl"  # "mtl": one model, one head per label; "stl": one model per label (StlEnsemble)
    # The MobileNetV2 is scaled down in depth, not width: its first 4 stages at full width with a 256-wide
    # embedding beat width 0.5 with all 7 stages by 6-8 points on facemask (S4L and supervised) and train
    # faster on a CPU; from scratch on a few hundred labels the deep, narrow network learns less
    # (docs/training.md, "Why these defaults").
    width: float = 1.0  # MobileNetV2 width multiplier
    stages: int = 4  # MobileNetV2 inverted-residual stages kept, of the paper's 7
    embed_dim: int = 256  # channels of the encoder's last 1x1 convolution = frame embedding; 0 = MobileNetV2's 1280
    # multi: how frame encodings combine. "mean" (masked average) beat concat (the thesis's) on nuaa by 6.1
    # (supervised) and 7.9 (S4L) points over 3 seeds (docs/results.md) and takes any frame count; "concat" | "mean".
    fusion: str = "mean"
    hidden: int = 256  # width of the shared representation layer before the heads
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check_choice("model.kind", self.kind, ("multi", "single"))
        _check_choice("model.mode", self.mode, ("mtl", "stl"))
        _check_choice("model.fusion", self.fusion, ("concat", "mean"))
        if not 1 <= self.stages <= 7 or self.embed_dim < 0:
            raise ValueError(f"model.stages must be in 1..7 and model.embed_dim >= 0; got {self.stages}, "
                             f"{self.embed_dim}")


@dataclass(frozen=True)
class LossConfig:
    supervised_weight: float = 0.3  # thesis eq. 3.2
    entmin_weight: float = 0.3
    vat_weight: float = 0.3
    rotation_weight: float = 0.3  # not given in the thesis; weighted like the other parts
    vat_xi: float = 0.1  # power-iteration step; Miyato's 1e-6 is below float32 resolution here (losses/vat.py)
    vat_eps_ref: float = 32.0  # S4L's perturbation L2 norm for a 224x224x3 input, scaled to ours
    vat_eps: float | None = None  # absolute L2 norm per example instead of the scaled eps_ref
    vat_power_iterations: int = 1
    class_weighting: bool = True  # inverse-frequency class weights + per-label weights in the CE
    # label weight = coverage ** -power. 0: every label counts the same; its CE is already a mean over the items that
    # carry it, so inverse coverage (1, the thesis) on top made a label with 10x fewer annotations weigh 10x more
    # (docs/training.md, "Why these defaults")
    label_weight_power: float = 0.0
    # share of step 1 over which the EntMin and VAT weights rise from ~0 along exp(-5 (1 - t)^2)
    # (training/rampup.py); 0 = full weight from the first batch (the thesis)
    rampup: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rampup <= 1.0:
            raise ValueError(f"loss.rampup must be in [0, 1]; got {self.rampup}")


@dataclass(frozen=True)
class RecipeConfig:
    steps: tuple[int, ...] = (1, 2, 3)  # S4L MOAM steps to run, in order
    epochs_per_step: int = 10
    lr: float = 1e-3  # Adam, steps 1 and 2
    # decoupled (AdamW) weight decay, every step; 0 = plain Adam (the thesis). From scratch on a few hundred labels
    # the network memorises them; 0.05 lifted the supervised network on facemask from 60.6 to 70.9 (docs/training.md)
    weight_decay: float = 0.05
    restart_epochs: int = 0  # cosine restart period in epochs; 0 = one cosine cycle per S4L step
    min_lr_fraction: float = 0.0  # steps 1-2: cosine floor as a fraction of lr
    finetune_lr: float = 5e-4  # step 3
    finetune_min_lr_fraction: float = 0.1  # step 3 decays to lr / 10
    batch_size: int = 0  # 0 = thesis default for the model kind (multi 12 recordings, single 128 frames)
    eval_batch_size: int = 32  # recordings per evaluation batch
    # Share of every training batch drawn from items with a true label (oversampled), the rest from all
    # items; same batches for every step and arm, only the loss differs (training/labelled_batches.py).
    # 0 = plain shuffle, where sparse labels leave most batches without a supervised term.
    labelled_share: float = 0.5
    pseudo_label_threshold: float = 0.0  # step 2: min. confidence to keep a pseudo-label (0 = all)
    rotation_frames: int = 2  # multi: frames per recording that get the 4-way rotation task
    precise_bn: bool = True  # re-estimate BatchNorm statistics after every epoch (training/precise_bn.py)
    # Which weights the run ends with: "last_step" = the best validation epoch of the last step (the thesis);
    # "best_step" = the best validation epoch over all steps run (ties: the later step), so step 3's
    # fine-tuning on the few true labels must beat step 2 on validation to be kept.
    final_model: str = "last_step"
    seed: int = 0
    channels_last: bool = True  # ~1.7x faster CPU training (docs/training.md, "CPU facts")
    # "auto": float32 on CPU; on CUDA bf16 autocast where the GPU supports it, else fp16 with a gradient
    # scaler (training/precision.py). "fp32" | "bf16" | "fp16" force one.
    precision: str = "auto"
    num_threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True  # tqdm bars (shown only when stderr is a terminal)

    def __post_init__(self) -> None:
        if not self.steps or any(s not in (1, 2, 3) for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"recipe.steps must be increasing values from 1, 2, 3; got {self.steps!r}")
        if self.epochs_per_step < 1:
            raise ValueError(f"recipe.epochs_per_step must be >= 1; got {self.epochs_per_step}")
        if not 0.0 <= self.labelled_share <= 1.0:
            raise ValueError(f"recipe.labelled_share must be in [0, 1]; got {self.labelled_share}")
        _check_choice("recipe.final_model", self.final_model, ("last_step", "best_step"))
        _check_choice("recipe.precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        if not 0.0 <= self.pseudo_label_threshold <= 1.0:
            raise ValueError(f"recipe.pseudo_label_threshold must be in [0, 1]; got {self.pseudo_label_threshold}")

    def train_batch_size(self, kind: str) -> int:
        if self.batch_size:
            return self.batch_size
        return 12 if kind == "multi" else 128


@dataclass(frozen=True)
class BaselineConfig:
    """The linear baseline fitted beside the network (training/baseline.py); it serves a label whose
    validation balanced accuracy beats the network's."""

    enabled: bool = True
    grid: int = 32  # thumbnail side: each frame average-pooled to about grid x grid
    c_values: tuple[float, ...] = (0.01, 0.1, 1.0)  # L2 strengths tried (scikit-learn's C); chosen on validation

    def __post_init__(self) -> None:
        if self.grid < 1 or not self.c_values or any(c <= 0 for c in self.c_values):
            raise ValueError(f"baseline.grid must be >= 1 and baseline.c_values positive; got {self.grid}, "
                             f"{self.c_values}")


@dataclass(frozen=True)
class FitConfig:
    export: str  # Label Studio export (JSON or JSON_MIN)
    out: str  # run directory
    label_config: str | None = None  # labeling config XML; None = the repo's label_config.xml
    data_root: str | None = None  # LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ frame refs
    split: str | None = None  # split.json to use; None = compute with training.split and write RUN/split.json
    split_ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test (subjects)
    # an earlier split.json to extend: its subjects keep their part, new ones are assigned (split_extend.py)
    extend_split: str | None = None
    dup_threshold: int = 4  # near-duplicate frames (phash Hamming distance) merge subjects in a computed split; -1 = off
    init_from: str | None = None  # model.pt whose weights start the training
    label_studio_url: str | None = None  # for /data/upload/ and other server-relative frame refs
    label_studio_api_key: str | None = None  # never written to config.json
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    # CSV of every known label (recording_id + one column per label, e.g. a benchmark's truth.csv) that scores the
    # TEST split instead of its annotations; never used for training, model selection or the choice of heads
    test_truth: str | None = None
    int8: bool = False  # also write model.int8.onnx (static QDQ) when within 0.5 points of fp32 on val

    def __post_init__(self) -> None:
        if self.split and self.extend_split:
            raise ValueError("split and extend_split exclude each other: --split uses a split as it is, "
                             "--extend-split adds the export's new subjects to one")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("label_studio_api_key")  # a secret: config.json is shared with reports
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "FitConfig":
        return _build(cls, d, "config")

    @classmethod
    def from_json(cls, text: str) -> "FitConfig":
        return cls.from_dict(json.loads(text))


def _check_choice(where: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{where} must be one of {allowed}; got {value!r}")


def _build(cls: Any, d: dict, where: str) -> Any:
    """Dataclass from a dict, nested dataclasses and tuples included; unknown keys are an error."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    kwargs = {}
    for name, value in d.items():
        default = _default_of(known[name])
        if is_dataclass(default):
            value = _build(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _default_of(f: Any) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default
