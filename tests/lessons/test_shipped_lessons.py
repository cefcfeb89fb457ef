"""Every shipped lesson validates and runs end to end with every expectation holding."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.lesson import load_lesson
from engine.lesson_runner import LessonRunner, check_lesson, lesson_files
from vizvm.locations import lessons_dir

LESSONS = lesson_files(lessons_dir())


def test_lessons_are_shipped() -> None:
    assert len(LESSONS) >= 3


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_passes_its_own_checks(path: Path) -> None:
    lesson = load_lesson(path)
    assert any(step.question for step in lesson.steps), "every lesson asks at least one question"
    assert check_lesson(lesson) == []


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_previous_rewinds_exactly(path: Path) -> None:
    lesson = load_lesson(path)
    runner = LessonRunner(lesson)
    states = []
    for index in range(len(lesson.steps)):
        states.append(runner.machine.snapshot())
        runner.perform(index)
    for index in reversed(range(len(lesson.steps))):
        runner.rewind_to(index)
        assert runner.machine.snapshot() == states[index]


def test_generated_questions_follow_the_seed() -> None:
    lesson = load_lesson(next(p for p in LESSONS if "paging" in p.stem))
    index = next(i for i, s in enumerate(lesson.steps) if s.question and s.question.generate)
    first, again, other = (LessonRunner(lesson, seed=s).question(index) for s in (5, 5, 6))
    assert first == again and first != other
    assert first is not None and str(first.answer) in first.explanation


def test_nested_lesson_stops_on_walk_references() -> None:
    """Lesson 11 reveals its cold walk a reference at a time; rewinding restores the revealed reference."""
    from engine.lesson import check_expectations
    from engine.lesson_runner import LessonRunner
    from vizvm.locations import find_lesson

    runner = LessonRunner(load_lesson(find_lesson("11")))
    revealed = []
    for index in range(len(runner.steps)):
        outcome = runner.perform(index)
        assert check_expectations(runner.steps[index], runner.machine, outcome) == []
        revealed.append(outcome.revealed)
    assert revealed == [0, 1, 5, 20, 24]
    assert runner.substep is not None and runner.substep.revealed == 24 and len(runner.substep.references) == 24
    step = runner.machine.steps
    runner.rewind_to(2)  # back to just after reference 1
    assert runner.substep is not None and runner.substep.revealed == 1 and runner.machine.steps == step
    outcome = runner.perform(2)
    assert outcome.revealed == 5 and outcome.steps_run == 0
