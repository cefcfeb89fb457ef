"""`vizvm lessons [check FILES]` and `vizvm lesson NAME --solve`: headless lesson tools (no textual)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from engine.lesson import LessonError, load_lesson
from engine.lesson_runner import LessonRunner, check_lesson, lesson_files
from vizvm.locations import find_lesson, lessons_dir


def run_lessons(args: argparse.Namespace, out: TextIO) -> int:
    """List the shipped lessons, or check lesson files (all shipped ones by default)."""
    if args.action == "check":
        return _check(args.files, out)
    files = lesson_files(lessons_dir())
    if not files:
        out.write(f"no lessons found in {lessons_dir()}\n")
        return 1
    for path in files:
        try:
            lesson = load_lesson(path)
        except LessonError as error:
            out.write(f"{path.stem:<28} (invalid: {error})\n")
            continue
        topics = ", ".join(lesson.topics)
        out.write(f"{path.stem:<28} {lesson.title}  [{lesson.minutes} min; {topics}]\n")
    out.write("\nOpen one with: vizvm lesson NAME\n")
    return 0


def _check(files: list[str], out: TextIO) -> int:
    paths = [Path(f) for f in files] if files else lesson_files(lessons_dir())
    failed = 0
    for path in paths:
        try:
            lesson = load_lesson(path)
            failures = check_lesson(lesson)
        except LessonError as error:
            failures = [str(error)]
        except (KeyError, ValueError, OSError) as error:
            failures = [f"{path}: {error}"]
        except Exception as error:  # noqa: BLE001 - e.g. an assembler error in a lesson's program
            failures = [f"{path}: {error}"]
        if failures:
            failed += 1
            out.write(f"FAIL {path}\n" + "".join(f"  {line}\n" for line in failures))
        else:
            out.write(f"ok   {path} ({len(lesson.steps)} steps)\n")
    out.write(f"{len(paths) - failed} passed, {failed} failed\n")
    return 1 if failed else 0


def solve_lesson(name: str, seed: int | None, out: TextIO) -> int:
    """Print every question of a lesson with its answer (OSTEP's -c), running the lesson headless."""
    try:
        lesson = load_lesson(find_lesson(name))
    except (LessonError, FileNotFoundError) as error:
        print(f"vizvm lesson: {error}", file=sys.stderr)
        return 1
    runner = LessonRunner(lesson, seed=seed)
    out.write(f"{lesson.title} (seed {runner.seed})\n")
    for index, step in enumerate(lesson.steps):
        question = runner.question(index)
        if question is not None:
            out.write(f"\nStep {index + 1}: {step.title}\n  Q: {question.prompt}\n")
            for number, choice in enumerate(question.choices, 1):
                out.write(f"     {number}. {choice}\n")
            out.write(f"  A: {question.answer_text()}\n")
            if question.explanation:
                out.write(f"     {question.explanation.strip()}\n")
        runner.perform(index)
    return 0
