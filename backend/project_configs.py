"""Per-project labeling configs from /setup, bounded: an LRU of MAX_PROJECTS projects.

Only the parsed schema (or why it does not parse) is kept, never the config text, and parsing
is cached by the text's digest: Label Studio sends the same config before every batch, and a
client sending many large configs costs at most MAX_PROJECTS + MAX_PARSED small entries.
"""
from __future__ import annotations

import hashlib
from typing import Any

from backend.lru import LRU
from training.schema import LabelConfigError, LabelSchema, parse_label_config

MAX_PROJECTS = 256  # projects whose /setup config is remembered; the least recently used is forgotten
MAX_PARSED = 64  # distinct configs kept parsed


class ProjectConfigs:
    def __init__(self, max_projects: int = MAX_PROJECTS, max_parsed: int = MAX_PARSED):
        self._projects: LRU[str, LabelSchema | str] = LRU(max_projects)
        self._parsed: LRU[bytes, LabelSchema | str] = LRU(max_parsed)

    def remember(self, project: Any, label_config: str) -> None:
        """What /setup sent for `project` (parsed now: /setup is cached, so later batches pay nothing)."""
        self._projects.put(str(project), self._parse(label_config))

    def schema(self, label_config: str | None, project: Any) -> LabelSchema | None:
        """The schema of `label_config` (from /predict), else of the project's /setup config; None
        when neither is known. Raises LabelConfigError for a config that does not parse."""
        parsed = self._parse(label_config) if label_config else self._projects.get(str(project))
        if isinstance(parsed, str):
            raise LabelConfigError(parsed)
        return parsed

    def __len__(self) -> int:
        return len(self._projects)

    def _parse(self, label_config: str) -> LabelSchema | str:
        """The schema, or the message of why the config does not parse."""
        digest = hashlib.sha256(label_config.encode("utf-8", "surrogatepass")).digest()

        def parse() -> LabelSchema | str:
            try:
                return parse_label_config(label_config)
            except LabelConfigError as exc:
                return str(exc)
        return self._parsed.get_or_create(digest, parse)
