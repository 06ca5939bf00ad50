"""Typed values from environment variables: the one reader behind backend.settings and the active-learning config.

Empty or blank counts as unset; booleans are strict (a typo is an error, not "false"); a bad value raises the
caller's error class with the variable's name and value."""
from __future__ import annotations

from typing import Any, Mapping

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_text(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value stripped of blanks; None when unset or blank."""
    return (env.get(name) or "").strip() or None


def parse_env_value(name: str, raw: str, kind: type, error: type[Exception] = ValueError) -> Any:
    """`raw` (the text of variable `name`) as `kind`: bool, int, float or str."""
    if kind is bool:
        if raw.lower() not in TRUE + FALSE:
            raise error(f"{name}={raw!r} is not a boolean (true/false)")
        return raw.lower() in TRUE
    try:
        return kind(raw)
    except ValueError:
        raise error(f"{name}={raw!r} is not a valid {kind.__name__}") from None
