"""`python -m training.fit` flags (training/fit_cli.py): defaults from the dataclasses, every flag lands in its field."""
import json
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
    (["--set", "recipe.nope=1"], "no such FitConfig field"),
    (["--set", "recipe.lr"], "PATH=VALUE"),
    (["--set", "recipe.final_model=\"first\""], "recipe.final_model"),
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


# a valid non-default value for the fields whose type alone does not give one
_CHOSEN = {"model.kind": "single", "model.mode": "stl", "model.fusion": "concat", "recipe.final_model": "best_step",
           "recipe.steps": [1, 2], "split_ratios": [0.6, 0.2, 0.2], "data.store": "ram", "recipe.precision": "bf16",
           "baseline.c_values": [0.5, 2.0]}


def _other_value(path: str, default, annotation: str):
    if path in _CHOSEN:
        return _CHOSEN[path]
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default / 2 if default else 0.5
    return 1.5 if "float" in annotation else "x"


def test_every_fitconfig_field_is_reachable_from_the_command_line():
    from dataclasses import fields

    from training.config_paths import field_paths, value_at
    from training.fit_cli import DEST_FIELDS

    default = FitConfig(export="e.json", out="run")
    annotations = {}
    for path in field_paths():
        *parents, name = path.split(".")
        owner = value_at(default, ".".join(parents)) if parents else default
        annotations[path] = next(str(f.type) for f in fields(owner) if f.name == name)
    assert set(DEST_FIELDS.values()) <= set(field_paths())
    for path in field_paths():
        value = _other_value(path, value_at(default, path), annotations[path])
        cfg, _ = parse_args([*BASE, "--set", f"{path}={json.dumps(value)}"])
        got = value_at(cfg, path)
        assert (list(got) if isinstance(got, tuple) else got) == value != value_at(default, path), path


def test_a_run_repeats_from_its_config_json_and_explicit_flags_override_it(tmp_path):
    cfg, _ = parse_args([*BASE, "--frames", "4", "--max-preload-frames", "8", "--vat-weight", "0",
                         "--set", "recipe.lr=0.0003", "--set", "data.augment.zoom=0.2"])
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json(), encoding="utf-8")
    assert parse_args(["--config", str(path)])[0] == cfg
    again, _ = parse_args(["--config", str(path), "--seed", "5", "--out", "run2"])
    assert again == FitConfig.from_dict({**cfg.to_dict(), "out": "run2",
                                         "recipe": {**cfg.to_dict()["recipe"], "seed": 5}})


def test_without_config_export_and_out_are_required(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--out", "run"])
    assert "--export and --out are required" in capsys.readouterr().err

