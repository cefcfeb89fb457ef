"""Shared by the lesson tests: open the app on a lesson and wait for the lesson screen."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine.lesson import load_lesson
from engine.lesson_runner import LessonRunner
from engine.machine import MachineState
from vizvm.locations import find_lesson
from vizvm.screens.home import HomeScreen
from vizvm.screens.lesson import LessonScreen

BAD_LESSON = """title = "Broken"
summary = "A lesson with a typo in step 2."

[machine]
kernel = true

[[steps]]
title = "Fine"
narration = "ok"

[[steps]]
title = "Typo"
narraton = "the field name is misspelt"
"""


async def lesson_screen(pilot: Pilot[Any], limit: float = 10.0) -> LessonScreen:
    """Wait until the lesson screen is on top (opening replays saved steps headless), and return it."""
    waited = 0.0
    while not isinstance(pilot.app.screen, LessonScreen) and waited < limit:
        await pilot.pause(0.02)
        waited += 0.02
    screen = pilot.app.screen
    assert isinstance(screen, LessonScreen), f"no lesson screen, on {type(screen).__name__}"
    await pilot.pause()
    return screen


async def home_screen(pilot: Pilot[Any]) -> HomeScreen:
    """The home screen, once it is on top."""
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, HomeScreen), f"not home, on {type(screen).__name__}"
    return screen


@functools.cache
def _reference_states(name: str) -> tuple[MachineState, ...]:
    runner = LessonRunner(load_lesson(find_lesson(name)))
    states = [runner.machine.snapshot()]
    for index in range(len(runner.steps)):
        runner.perform(index)
        states.append(runner.machine.snapshot())
    return tuple(states)


def reference_state(name: str, performed: int) -> MachineState:
    """The machine after a headless run of the lesson's first `performed` steps: what the player must match."""
    return _reference_states(name)[performed]


def write_bad_lesson(directory: Path) -> Path:
    """A lesson file whose step 2 has an unknown field."""
    path = directory / "99-broken.toml"
    path.write_text(BAD_LESSON, encoding="utf-8")
    return path
