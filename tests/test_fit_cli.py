"""`python -m training.fit` flags (training/fit_cli.py): defaults from the dataclasses, every flag lands in its field."""
import subprocess
import sys

import pytest

from training import fit as fit_module
from training.config import AugmentConfig, DataConfig, FitConfig, LossConfig, ModelConfig, RecipeConfig
from training.fit_cli import parse_args

BASE = ["--export", "e.json", "--out", "run"]


@pytest.fixture(autouse=True)
def _no_label_studio_env(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)


def test_without_flags_the_config_is_the_dataclass_defaults():
    cfg, resume = parse_args(BASE)
    assert not resume
    assert cfg == FitConfig(export="e.json", out="run")
    assert (cfg.data, cfg.model, cfg.loss, cfg.recipe) == (DataConfig(), ModelConfig(), LossConfig(), RecipeConfig())


@pytest.mark.parametrize("flag, value, part, field", [
    ("--supervised-weight", "1.0", "loss", "supervised_weight"),
    ("--entmin-weight", "0", "loss", "entmin_weight"),
    ("--vat-weight", "0.05", "loss", "vat_weight"),
    ("--rotation-weight", "0.7", "loss", "rotation_weight"),
    ("--vat-eps", "2.5", "loss", "vat_eps"),
    ("--rampup", "1.0", "loss", "rampup"),
    ("--label-fraction-seed", "7", "data", "label_fraction_seed"),
    ("--max-preload-frames", "12", "data", "max_preload_frames"),
    ("--label-fraction", "0.3", "data", "label_fraction"),
    ("--pseudo-label-threshold", "0.9", "recipe", "pseudo_label_threshold"),
    ("--labelled-share", "0", "recipe", "labelled_share"),
    ("--fusion", "concat", "model", "fusion"),
    ("--final-model", "best_step", "recipe", "final_model"),
])
def test_each_flag_sets_exactly_its_field(flag, value, part, field):
    cfg, _ = parse_args([*BASE, flag, value])
    default = FitConfig(export="e.json", out="run")
    got = getattr(getattr(cfg, part), field)
    assert got == type(got)(value) and got != getattr(getattr(default, part), field)
    # nothing else moved
    assert {k: v for k, v in vars(getattr(cfg, part)).items() if k != field} == \
        {k: v for k, v in vars(getattr(default, part)).items() if k != field}
    assert {p: getattr(cfg, p) for p in ("data", "model", "loss", "recipe") if p != part} == \
        {p: getattr(default, p) for p in ("data", "model", "loss", "recipe") if p != part}


def test_per_class_label_draw_flag():
    cfg, _ = parse_args([*BASE, "--label-fraction", "0.1", "--label-fraction-per-class"])
    assert cfg.data == DataConfig(label_fraction=0.1, label_fraction_per_class=True)


def test_augment_flag_switches_on_the_default_augmentation():
    cfg, _ = parse_args([*BASE, "--augment"])
    assert cfg.data == DataConfig(augment=AugmentConfig(enabled=True))
    assert not parse_args(BASE)[0].data.augment.enabled


@pytest.mark.parametrize("argv, message", [
    (["--frames", "40"], "max_preload_frames"),  # more frames than are preloaded
    (["--steps", "1,x"], "--steps must be comma-separated integers"),
    (["--steps", "3,1"], "recipe.steps"),
    (["--label-fraction", "1.5"], "label_fraction"),
    (["--labelled-share", "-0.1"], "labelled_share"),
    (["--rampup", "2"], "loss.rampup"),
])
def test_bad_values_exit_with_a_message_naming_the_field(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args([*BASE, *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_fit_main_trains_the_parsed_config(monkeypatch):
    calls = []
    monkeypatch.setattr(fit_module, "fit", lambda cfg, resume: calls.append((cfg, resume)))
    argv = [*BASE, "--vat-weight", "0", "--frames", "4", "--max-preload-frames", "8", "--resume"]
    fit_module.main(argv)
    assert calls == [parse_args(argv)] and calls[0][1] is True


def test_the_parser_does_not_import_torch():
    code = "import sys, training.fit_cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
