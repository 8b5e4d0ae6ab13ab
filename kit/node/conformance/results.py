"""What a conformance run reports: per chapter, per story, the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Sequence

__all__ = ["ChapterResult", "ConformanceReport", "Evaluation", "Result", "StoryResult", "overall_result"]


class Result(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    IGNORED = "IGNORED"


def overall_result(results: Sequence[Result]) -> Result:
    """``helpers.overall_result``: error > failed > all skipped > passed."""
    if not results:
        return Result.PASSED
    if Result.ERROR in results:
        return Result.ERROR
    if Result.FAILED in results:
        return Result.FAILED
    if all(r == Result.SKIPPED for r in results):
        return Result.SKIPPED
    return Result.PASSED


@dataclass
class Evaluation:
    result: Result
    message: str | None = None


@dataclass
class ChapterResult:
    """The outcome of one prologue, chapter or epilogue."""

    kind: str  # prologue | chapter | epilogue
    title: str
    method: str
    path: str
    result: Result
    message: str | None = None
    retries: int = 0
    output: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "title": self.title, "method": self.method, "path": self.path,
                               "result": self.result.value}
        if self.message:
            out["message"] = self.message
        if self.retries:
            out["retries"] = self.retries
        return out


@dataclass
class StoryResult:
    """The outcome of one story file. ``status`` folds upstream's ERROR into FAILED."""

    path: str
    description: str
    result: Result
    message: str | None = None
    chapters: list[ChapterResult] = field(default_factory=list)
    seconds: float = 0.0
    skip_listed: bool = False

    @property
    def status(self) -> str:
        if self.result in (Result.ERROR, Result.FAILED):
            return "FAILED"
        if self.result == Result.SKIPPED:
            return "SKIPPED"
        return "PASSED"

    @property
    def reason(self) -> str | None:
        """Why it failed or was skipped: the story's message, else the first failing step."""
        if self.message:
            return self.message
        for chapter in self.chapters:
            if chapter.result in (Result.ERROR, Result.FAILED):
                return f"{chapter.kind} '{chapter.title}' ({chapter.method} {chapter.path}): {chapter.message or chapter.result.value}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "description": self.description, "status": self.status,
                "result": self.result.value, "reason": self.reason, "skip_listed": self.skip_listed,
                "seconds": round(self.seconds, 3), "chapters": [c.to_dict() for c in self.chapters]}

    def line(self) -> str:
        reason = self.reason
        return f"{self.status} {self.path}" + (f" ({reason})" if reason and self.status != "PASSED" else "")


@dataclass
class ConformanceReport:
    url: str
    version: str
    distribution: str
    stories: list[StoryResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for s in self.stories if s.status == status)

    @property
    def passed(self) -> int:
        return self.count("PASSED")

    @property
    def failed(self) -> int:
        return self.count("FAILED")

    @property
    def skipped(self) -> int:
        return self.count("SKIPPED")

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "version": self.version, "distribution": self.distribution,
                "passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "stories": [s.to_dict() for s in self.stories]}
