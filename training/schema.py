"""Label schema parsed from a Label Studio labeling config.

The labels a model learns come from the config, never from constants in code: any config made
of single-choice <Choices> over one <Image valueList=...> (or <Image value=...>) object parses
into an ordered schema. XML is parsed with defusedxml (no entity expansion).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree as SafeET

DEFAULT_LABEL_CONFIG = Path(__file__).resolve().parent.parent / "label_config.xml"


class LabelConfigError(ValueError):
    """The labeling config cannot be used as a label schema."""


@dataclass(frozen=True)
class LabelSpec:
    name: str
    classes: tuple[str, ...]

    def index(self, cls: str) -> int:
        return self.classes.index(cls)


@dataclass(frozen=True)
class LabelSchema:
    """Ordered labels (question name -> classes) over one image object."""

    labels: tuple[LabelSpec, ...]
    object_name: str = "frames"  # <Image name=...>, the predictions' to_name
    value_key: str = "frames"  # task data key holding the frame list (valueList="$frames")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.labels)

    def __getitem__(self, name: str) -> LabelSpec:
        for spec in self.labels:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.labels)

    def has_class(self, name: str, cls: str) -> bool:
        return name in self and cls in self[name].classes

    def to_dict(self) -> dict:
        return {
            "object_name": self.object_name,
            "value_key": self.value_key,
            "labels": [{"name": s.name, "classes": list(s.classes)} for s in self.labels],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LabelSchema":
        return cls(
            labels=tuple(LabelSpec(x["name"], tuple(x["classes"])) for x in d["labels"]),
            object_name=d.get("object_name", "frames"),
            value_key=d.get("value_key", "frames"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def parse_label_config(xml_text: str) -> LabelSchema:
    """Parse a labeling config into a LabelSchema; raise LabelConfigError naming the problem."""
    try:
        root = SafeET.fromstring(xml_text)
    except Exception as exc:  # defusedxml raises its own types for forbidden constructs
        raise LabelConfigError(f"labeling config is not valid/safe XML: {exc}") from exc
    images = [el for el in root.iter() if el.tag == "Image"]
    if len(images) != 1:
        raise LabelConfigError(f"labeling config needs exactly one <Image>, found {len(images)}")
    image = images[0]
    object_name = image.get("name")
    ref = image.get("valueList") or image.get("value") or ""
    if not object_name or not ref.startswith("$"):
        raise LabelConfigError("<Image> needs name=... and valueList=\"$key\" (or value=\"$key\")")
    specs: list[LabelSpec] = []
    for el in root.iter():
        if el.tag != "Choices":
            continue
        name = el.get("name")
        if not name:
            raise LabelConfigError("<Choices> without name=")
        if el.get("toName") != object_name:
            raise LabelConfigError(f"<Choices name={name!r}> must have toName={object_name!r}")
        if el.get("choice", "single") not in ("single", "single-radio"):
            raise LabelConfigError(f"<Choices name={name!r}> must be single-choice")
        # Label Studio stores a choice's alias when it has one (the value is only its display text)
        classes = tuple(c.get("alias") or c.get("value") for c in el if c.tag == "Choice")
        if len(classes) < 2 or any(not c for c in classes) or len(set(classes)) != len(classes):
            raise LabelConfigError(f"<Choices name={name!r}> needs >= 2 distinct non-empty <Choice value=...>")
        if any(s.name == name for s in specs):
            raise LabelConfigError(f"duplicate <Choices name={name!r}>")
        specs.append(LabelSpec(name, classes))
    if not specs:
        raise LabelConfigError("labeling config has no <Choices>")
    return LabelSchema(tuple(specs), object_name=object_name, value_key=ref[1:])


def load_label_config(path: str | Path | None = None) -> LabelSchema:
    """Read and parse a labeling config file (default: the repo's eleven-label config)."""
    path = Path(path) if path is not None else DEFAULT_LABEL_CONFIG
    return parse_label_config(path.read_text(encoding="utf-8"))
