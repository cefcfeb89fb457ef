"""Per-user lesson progress and answers, kept in ``data_dir()/progress.json``. No textual here.

The file is rewritten atomically (a temporary file in the same directory, then ``os.replace``), so a
crash mid-write never leaves half a file. A file that cannot be read (bad JSON, wrong shape) is
reported once through `ProgressStore.problem`, moved aside as ``progress.json.corrupt`` and replaced:
the student loses that progress, never the app.

Shape::

    {"version": 1, "lessons": {"01-privileged-instructions": {
        "step": 3, "total": 5, "done": false, "seed": 1,
        "answers": {"1": {"response": "1", "correct": true}}}}}

``step`` is the 0-based index of the step the student is on; ``answers`` is keyed by step index.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vizvm.locations import data_dir

VERSION = 1
FILE_NAME = "progress.json"


@dataclass(frozen=True)
class Answer:
    """What the student answered to one question, and whether it was right."""

    response: str
    correct: bool


@dataclass
class LessonProgress:
    """Where a student is in one lesson and what they answered."""

    step: int = 0
    """0-based index of the step shown when the lesson was left."""
    total: int = 0
    """The lesson's number of steps when this was saved."""
    done: bool = False
    """True once the last step's action has run."""
    seed: int | None = None
    """The seed generated questions used (a different seed is a different problem)."""
    answers: dict[int, Answer] = field(default_factory=dict)

    @property
    def right(self) -> int:
        """How many answered questions were right."""
        return sum(answer.correct for answer in self.answers.values())

    def summary(self) -> str:
        """``not started``, ``step 3 of 5`` or ``done``."""
        if self.done:
            return "done"
        if self.step == 0 and not self.answers:
            return "not started"
        return f"step {self.step + 1} of {self.total}"

    def score(self) -> str:
        """``2/3 right`` over the answered questions, or ``-``."""
        return f"{self.right}/{len(self.answers)} right" if self.answers else "-"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"step": self.step, "total": self.total, "done": self.done, "seed": self.seed,
                "answers": {str(index): {"response": a.response, "correct": a.correct}
                            for index, a in sorted(self.answers.items())}}

    @classmethod
    def from_json(cls, raw: Any) -> LessonProgress:
        """Parse one lesson's entry; raises ValueError on a wrong shape."""
        if not isinstance(raw, dict):
            raise ValueError("a lesson entry is not an object")
        answers_raw = raw.get("answers", {})
        if not isinstance(answers_raw, dict):
            raise ValueError("'answers' is not an object")
        answers = {}
        for key, value in answers_raw.items():
            if not isinstance(value, dict) or not isinstance(value.get("response"), str):
                raise ValueError(f"answer {key!r} has no response")
            answers[int(key)] = Answer(value["response"], bool(value.get("correct")))
        step, total, seed = raw.get("step", 0), raw.get("total", 0), raw.get("seed")
        if not isinstance(step, int) or not isinstance(total, int) or step < 0:
            raise ValueError("'step' and 'total' must be non-negative integers")
        if seed is not None and not isinstance(seed, int):
            raise ValueError("'seed' must be an integer")
        return cls(step, total, bool(raw.get("done", False)), seed, answers)


class ProgressStore:
    """Reads and writes the progress file; every method is safe against a damaged file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / FILE_NAME
        self.problem: str | None = None
        """Set when the file on disk could not be read (and was replaced); shown to the student once."""
        self.lessons: dict[str, LessonProgress] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as error:
            self.problem = f"could not read {self.path}: {error}"
            return
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or not isinstance(raw.get("lessons", {}), dict):
                raise ValueError("the top level is not an object with 'lessons'")
            self.lessons = {str(name): LessonProgress.from_json(entry) for name, entry in raw["lessons"].items()}
        except (ValueError, TypeError, KeyError) as error:
            self.lessons = {}
            aside = self.path.with_name(self.path.name + ".corrupt")
            try:
                os.replace(self.path, aside)
                kept = f"; the damaged file was kept as {aside.name}"
            except OSError:
                kept = ""
            self.problem = f"{self.path} was damaged ({error}) and has been started afresh{kept}"

    def get(self, name: str) -> LessonProgress | None:
        """The saved progress of lesson `name`, if any."""
        return self.lessons.get(name)

    def put(self, name: str, progress: LessonProgress) -> None:
        """Record a lesson's progress and save the file."""
        self.lessons[name] = progress
        self.save()

    def forget(self, name: str) -> None:
        """Start lesson `name` over (drop its progress) and save."""
        if self.lessons.pop(name, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the file atomically; a failure is kept in `problem` instead of raised."""
        data = {"version": VERSION, "lessons": {name: p.to_json() for name, p in sorted(self.lessons.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".progress-", suffix=".json", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(data, out, indent=1)
                    out.write("\n")
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            self.problem = f"could not save progress to {self.path}: {error}"
