"""What can go wrong reading a Label Studio export (export_reader.py): the problem codes, the
Problem records, the ExportError subclass per data-losing code (raised with strict=True), and the
printable report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator

DATA_LOSING = frozenset({"missing_data", "bad_frames", "not_a_list", "unknown_question", "unknown_class"})
INFO_CODES = frozenset({"cancelled"})


class ExportError(ValueError):
    """The export cannot be read (or, with strict=True, a task loses data)."""


class MissingDataError(ExportError): ...


class BadFramesError(ExportError): ...


class NotAListError(ExportError): ...


class UnknownQuestionError(ExportError): ...


class UnknownClassError(ExportError): ...


ERRORS = {
    "missing_data": MissingDataError,
    "bad_frames": BadFramesError,
    "not_a_list": NotAListError,
    "unknown_question": UnknownQuestionError,
    "unknown_class": UnknownClassError,
}


@dataclass(frozen=True)
class Problem:
    code: str
    task_id: int | str | None
    annotation_id: int | str | None
    message: str

    @property
    def severity(self) -> str:
        return "info" if self.code in INFO_CODES else "error" if self.code in DATA_LOSING else "warning"

    def __str__(self) -> str:
        ann = f" annotation {self.annotation_id}" if self.annotation_id is not None else ""
        return f"[{self.severity}] {self.code}: task {self.task_id}{ann}: {self.message}"


def problem_report(problems: Iterable[Problem]) -> Iterator[str]:
    """Printable lines: one per problem, then a count per code."""
    problems = list(problems)
    yield from (str(p) for p in problems)
    counts = Counter(p.code for p in problems)
    yield "problems: " + (", ".join(f"{code}={n}" for code, n in sorted(counts.items())) or "none")


class ProblemLog(list):
    """The problems found so far; with strict=True a data-losing one raises its ExportError instead."""

    def __init__(self, strict: bool):
        super().__init__()
        self.strict = strict

    def add(self, code: str, task_id, annotation_id, message: str) -> None:
        problem = Problem(code, task_id, annotation_id, message)
        if self.strict and code in DATA_LOSING:
            raise ERRORS[code](str(problem))
        self.append(problem)
