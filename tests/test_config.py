import json

import pytest

from training.config import AugmentConfig, DataConfig, FitConfig, LossConfig, ModelConfig, RecipeConfig


def _custom() -> FitConfig:
    return FitConfig(
        export="e.json", out="runs/x", label_config="c.xml", data_root="/data", split="s.json",
        split_ratios=(0.6, 0.2, 0.2), init_from="m.pt", label_studio_api_key="secret-token",
        data=DataConfig(frames=4, image_size=64, standardize=True, mean=0.1, std=0.5, label_fraction=0.25,
                        augment=AugmentConfig(enabled=True, flip=False, shift=0.05)),
        model=ModelConfig(kind="single", mode="stl", width=0.35, fusion="mean", hidden=64, dropout=0.0),
        loss=LossConfig(vat_weight=0.0, vat_eps=3.5, class_weighting=False),
        recipe=RecipeConfig(steps=(1, 3), epochs_per_step=2, batch_size=5, pseudo_label_threshold=0.9, seed=7),
    )


def test_json_round_trip_keeps_every_field_but_the_secret():
    cfg = _custom()
    back = FitConfig.from_json(cfg.to_json())
    assert back == FitConfig(**{**cfg.__dict__, "label_studio_api_key": None})
    assert isinstance(back.recipe.steps, tuple) and isinstance(back.split_ratios, tuple)
    assert "secret-token" not in cfg.to_json()


def test_defaults_are_the_thesis_recipe():
    cfg = FitConfig.from_json(json.dumps({"export": "e", "out": "o"}))
    assert cfg.recipe.steps == (1, 2, 3) and cfg.recipe.epochs_per_step == 10
    assert cfg.recipe.lr == 1e-3 and cfg.recipe.finetune_lr == 5e-4 and cfg.recipe.finetune_min_lr_fraction == 0.1
    assert (cfg.loss.supervised_weight, cfg.loss.entmin_weight, cfg.loss.vat_weight) == (0.3, 0.3, 0.3)
    assert cfg.data.frames == 10 and cfg.data.image_size == 224
    assert cfg.recipe.train_batch_size("multi") == 12 and cfg.recipe.train_batch_size("single") == 128
    assert RecipeConfig(batch_size=3).train_batch_size("single") == 3


def test_unknown_keys_and_bad_values_are_named():
    with pytest.raises(ValueError, match=r"config\.recipe: unknown keys \['epochs'\]"):
        FitConfig.from_dict({"export": "e", "out": "o", "recipe": {"epochs": 3}})
    with pytest.raises(ValueError, match="model.kind"):
        ModelConfig(kind="video")
    with pytest.raises(ValueError, match="model.stages"):
        ModelConfig(stages=8)
    with pytest.raises(ValueError, match="recipe.steps"):
        RecipeConfig(steps=(3, 1))
    with pytest.raises(ValueError, match="pseudo_label_threshold"):
        RecipeConfig(pseudo_label_threshold=1.5)
