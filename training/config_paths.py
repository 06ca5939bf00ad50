"""Every FitConfig field by its dotted path ("recipe.lr", "data.augment.zoom"): listing, parsing and setting them.

The command line reaches any field through `--set PATH=VALUE` (training/fit_cli.py), so nothing the python API can
configure is out of reach of `python -m training.fit` or of AL_FIT_ARGS. Torch-free.
"""
from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from typing import Any

from training.config import FitConfig, _default_of

SECRET = "label_studio_api_key"  # from the environment only, never from a file or a flag value in `ps`


def field_paths(cls: type = FitConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field (nested dataclasses expanded), in declaration order."""
    out = []
    for f in fields(cls):
        default = _default_of(f)
        if is_dataclass(default):
            out += field_paths(type(default), f"{prefix}{f.name}.")
        elif f.name != SECRET:
            out.append(prefix + f.name)
    return out


def parse_assignment(text: str) -> tuple[str, Any]:
    """'recipe.lr=3e-4' -> ("recipe.lr", 0.0003). The value is JSON (numbers, true/false, null, [lists]); anything
    that is not JSON is taken as a string, so `data.cache_dir=.cache/x` needs no quotes."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ValueError(f"--set expects PATH=VALUE, got {text!r}")
    if path not in field_paths():
        raise ValueError(f"--set {path}: no such FitConfig field (known: {', '.join(field_paths())})")
    try:
        return path, json.loads(raw)
    except json.JSONDecodeError:
        return path, raw


def with_values(cfg: FitConfig, values: dict[str, Any]) -> FitConfig:
    """`cfg` with the fields at `values`' dotted paths replaced, checked like config.json (unknown keys, ranges)."""
    d = cfg.to_dict()
    for path, value in values.items():
        *parents, name = path.split(".")
        node = d
        for part in parents:
            node = node[part]
        node[name] = value
    return FitConfig.from_dict({**d, SECRET: cfg.label_studio_api_key})


def value_at(cfg: FitConfig, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node
