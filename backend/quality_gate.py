"""Which labels of a model the backend pre-annotates: the per-label quality gate.

A pre-annotation anchors the annotator, so a label is served only when its validation figures (in
the model file's recmeta "quality", written by training.fit) pass training.label_quality.gate_verdict.
Order of precedence, first match wins:
1. untrained head, or training annotations of one class only: withheld (no setting serves it);
2. QUALITY_GATE_WITHHOLD names it: withheld; QUALITY_GATE_SERVE names it: served;
3. QUALITY_GATE=off: served;
4. the rule (gate_verdict, with QUALITY_GATE_MIN_VAL); a file without figures: served, said so.
"""
from __future__ import annotations

from training.label_quality import Verdict, gate_verdict


def label_gate(meta: dict, schema, settings) -> dict[str, Verdict]:
    """{label: Verdict} for every label of the model's `schema`, from its recmeta `meta`."""
    quality = meta.get("quality") or {}
    untrained = set(meta.get("untrained") or ())
    single = set(meta.get("single_class") or ())
    out = {}
    for spec in schema.labels:
        name = spec.name
        if name in untrained:
            out[name] = Verdict(False, "untrained head (no training annotations)")
        elif name in single:
            out[name] = Verdict(False, "training annotations hold one class only")
        elif name in settings.quality_gate_withhold:
            out[name] = Verdict(False, "QUALITY_GATE_WITHHOLD")
        elif name in settings.quality_gate_serve:
            out[name] = Verdict(True, "QUALITY_GATE_SERVE")
        elif not settings.quality_gate:
            out[name] = Verdict(True, "QUALITY_GATE=off")
        else:
            out[name] = gate_verdict(quality.get(name), len(spec.classes), settings.quality_gate_min_val)
    return out


def gate_report(version: str, meta: dict, gate: dict[str, Verdict]) -> dict:
    """The /labels document: per label served or withheld, why, and the figures it was judged by."""
    quality = meta.get("quality") or {}
    labels = {}
    for name, verdict in gate.items():
        q = quality.get(name) or {}
        labels[name] = {"served": verdict.served, "reason": verdict.reason,
                        "balanced_accuracy": q.get("balanced_accuracy"), "interval": q.get("interval"),
                        "val_counts": q.get("val_counts")}
    return {"model_version": version, "labels": labels}


def gate_log_lines(version: str, gate: dict[str, Verdict]) -> list[str]:
    served = sum(v.served for v in gate.values())
    return [f"model {version}: quality gate serves {served} of {len(gate)} labels"] + [
        f"  {name}: {'served' if v.served else 'withheld'} ({v.reason})" for name, v in gate.items()]
