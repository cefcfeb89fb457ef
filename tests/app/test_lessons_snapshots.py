"""Snapshots of the lesson player: the home screen, one step of each of the first three lessons, classroom mode.

These use the shipped lessons and kernel (a lesson is about them), so an edit to a shipped lesson or to
the kernel's source changes these baselines: look at the new SVGs, then `pytest tests/app
--snapshot-update`. Progress goes to a temporary VIZVM_DATA_DIR.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.app.lesson_helpers import lesson_screen, write_bad_lesson
from vizvm.app import make_app
from vizvm.locations import lessons_dir
from vizvm.progress import Answer, LessonProgress, ProgressStore
from vizvm.scenarios import no_blink

SnapCompare = Callable[..., bool]
Moves = Callable[[Any], None]


@pytest.fixture(autouse=True)
def private_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Progress in a temporary directory."""
    monkeypatch.setenv("VIZVM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def at_step(moves: Moves) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Open the lesson, apply `moves` to its session, redraw, stop cursors blinking."""

    async def run_before(pilot: Pilot[Any]) -> None:
        screen = await lesson_screen(pilot)
        moves(screen.session)
        screen.lesson_moved()
        await pilot.pause()
        no_blink(pilot.app)
        await pilot.pause(0.1)

    return run_before


def first_step_asks(session: Any) -> None:
    """Lesson 1 as it opens: the first question waits, the machine at step 0."""


def second_step_asks_a_number(session: Any) -> None:
    """Lesson 2, step 2: in user mode at _start, asking for r2 before the three movs run."""
    session.next()


def walk_revealed(session: Any) -> None:
    """Lesson 3, step 3: the first translated fetch missed the TLB and walked two levels; answered right."""
    question = session.question
    session.answer_with(str(question.answer))
    session.next()
    session.next()
    session.answer_with("2")


class TestLessonSnapshots:
    """The lesson pane beside the machine at 160x50."""

    def test_home(self, snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """The lesson list with progress: one lesson half done with a score, one done, one that does not load.

        The list is the first three shipped lessons and a broken one, so new lessons do not change it.
        """
        shelf = tmp_path / "lessons"
        shelf.mkdir()
        for path in sorted(lessons_dir().glob("0[123]-*.toml")):
            shutil.copy(path, shelf / path.name)
        write_bad_lesson(shelf)
        monkeypatch.setattr("vizvm.screens.home.lessons_dir", lambda: shelf)
        store = ProgressStore()
        store.put("01-privileged-instructions",
                  LessonProgress(step=2, total=5, seed=1, answers={0: Answer("1", True), 1: Answer("2", False)}))
        store.put("02-system-calls", LessonProgress(step=4, total=5, done=True, seed=2,
                                                    answers={1: Answer("23", True)}))
        assert snap_compare(make_app(home=True), terminal_size=(160, 50))

    def test_lesson1_choice_question(self, snap_compare: SnapCompare) -> None:
        """Lesson 1, step 1: narration, a choice question asked before the action; CPU ring in focus."""
        app = make_app(home=True, lesson="01")
        assert snap_compare(app, run_before=at_step(first_step_asks), terminal_size=(160, 50))

    def test_lesson2_number_question(self, snap_compare: SnapCompare) -> None:
        """Lesson 2, step 2: a number question with its answer field."""
        app = make_app(home=True, lesson="02")
        assert snap_compare(app, run_before=at_step(second_step_asks_a_number), terminal_size=(160, 50))

    def test_lesson3_walk_revealed(self, snap_compare: SnapCompare) -> None:
        """Lesson 3, step 3: answer revealed, the checks passed, mapper and log highlighted."""
        app = make_app(home=True, lesson="03")
        assert snap_compare(app, run_before=at_step(walk_revealed), terminal_size=(160, 50))

    def test_lesson3_projector_compact(self, snap_compare: SnapCompare) -> None:
        """Classroom mode at 100x30: projector theme, only the focused panels beside the lesson."""
        app = make_app(home=True, lesson="03", projector=True)
        assert snap_compare(app, run_before=at_step(walk_revealed), terminal_size=(100, 30))
