"""Real key presses: the bindings reach the actions, and no key sequence crashes the app."""

from __future__ import annotations

import random
from pathlib import Path

from tests.app.demo_machine import demo_machine
from vizvm.app import VizVMApp, make_app
from vizvm.scenarios import machine_screen, wait_stopped
from vizvm.screens.dialogs import GoToStepDialog
from vizvm.screens.help import HelpScreen
from vizvm.screens.load import LoadProgramDialog
from vizvm.screens.machine import MachineScreen

SIZE = (160, 50)


async def test_step_keys(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        await pilot.press("s", "s", "s", "b")
        assert screen.bridge.machine.steps == 2
        await pilot.press("t")
        await wait_stopped(pilot)
        assert "system call" in screen.bridge.last_stop
        await pilot.press("o")
        await wait_stopped(pilot)
        assert screen.bridge.machine.cpu.ring == 3
        await pilot.press("R")
        assert screen.bridge.machine.steps == 0


async def test_dialog_and_help_keys(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(demo_app.screen, HelpScreen)
        await pilot.press("escape", "g")
        assert isinstance(demo_app.screen, GoToStepDialog)
        await pilot.press("2", "5", "enter")
        await wait_stopped(pilot)
        assert machine_screen(demo_app).bridge.machine.steps == 25
        await pilot.press("l")
        assert isinstance(demo_app.screen, LoadProgramDialog)
        await pilot.press("escape", "ctrl+p")
        assert type(demo_app.screen).__name__ == "CommandPalette"
        await pilot.press("escape")
        assert isinstance(demo_app.screen, MachineScreen)


async def test_run_pause_and_panel_keys(demo_app: VizVMApp) -> None:
    async with demo_app.run_test(size=SIZE) as pilot:
        screen = machine_screen(demo_app)
        await pilot.press("2")
        assert not screen.query_one("#cpu").display
        await pilot.press("2", "tab", "m")
        assert screen.maximized is not None
        await pilot.press("m", "r")
        await wait_stopped(pilot)
        assert screen.bridge.machine.halted


MASH_KEYS = [
    "s", "b", "r", "t", "p", "i", "c", "o", "g", "R", "x", "f9", "l", "f", "C", "m", "1", "2", "3", "4",
    "5", "6", "0", "plus", "minus", "left_square_bracket", "right_square_bracket", "left_curly_bracket",
    "right_curly_bracket", "f1", "question_mark", "ctrl+p", "ctrl+t", "ctrl+s", "tab", "shift+tab", "escape",
    "enter", "space", "up", "down", "left", "right", "home", "end", "pageup", "pagedown", "a", "7", "backspace",
]


async def test_random_keys_never_crash(tmp_path: Path) -> None:
    app = make_app(demo_machine(), screenshot_dir=str(tmp_path))
    rng = random.Random(640)
    keys = [rng.choice(MASH_KEYS) for _ in range(150)]
    async with app.run_test(size=(120, 40)) as pilot:
        for key in keys:
            await pilot.press(key)
        screen = machine_screen(app)
        assert screen.is_attached and screen.bridge.machine.steps >= 0
    assert app.return_code in (None, 0)
