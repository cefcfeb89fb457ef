"""Classroom mode (projector layout, theme, key echo), the home screen, and `vizvm serve` without serving."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from tests.app.demo_machine import demo_machine
from tests.app.lesson_helpers import home_screen, lesson_screen
from vizvm.__main__ import build_parser
from vizvm.app import make_app
from vizvm.projector import PROJECTOR_THEME, KeyEcho
from vizvm.screens.home import FreePlayScreen
from vizvm.screens.machine import MachineScreen
from vizvm.serve import build_server, run_serve, serve_command


@pytest.fixture(autouse=True)
def private_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Progress in a temporary directory."""
    monkeypatch.setenv("VIZVM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


async def test_projector_toggle_in_a_lesson() -> None:
    """F5: projector theme, only the step's focus panels beside the lesson; F5 again restores everything."""
    app = make_app(home=True, lesson="05")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        before = app.theme
        normally = {panel_id for panel_id, panel in screen._panels() if panel.display}
        app.action_toggle_projector()
        await pilot.pause()
        assert app.theme == PROJECTOR_THEME and app.has_class("-projector") and screen.projector
        shown = {panel_id for panel_id, panel in screen._panels() if panel.display}
        assert shown == {"timeline", "cpu"}, "step 1 focuses timeline:last and cpu"
        screen.action_lesson_next()
        await pilot.pause()
        assert {panel_id for panel_id, panel in screen._panels() if panel.display} == {"vmm", "cpu"}
        await pilot.press("f5")
        await pilot.pause()
        assert app.theme == before and not app.has_class("-projector")
        assert {panel_id for panel_id, panel in screen._panels() if panel.display} == normally


async def test_key_presses_are_echoed_in_projector_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """In classroom mode each key shows on screen with what it did; not otherwise."""
    monkeypatch.setattr("vizvm.projector.ECHO_SECONDS", 120.0)  # never fade mid-test on a slow machine
    app = make_app(home=True, lesson="05", projector=True)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        assert app.theme == PROJECTOR_THEME
        await pilot.press("n")
        await pilot.pause()
        echo = screen.query_one(KeyEcho)
        assert echo.display and str(echo.render()) == "n  Next"
        await pilot.press("escape")  # leave the answer field... and the lesson
        await pilot.pause()
        app.action_toggle_projector()
        home = await home_screen(pilot)
        await pilot.press("down")
        await pilot.pause()
        assert not home.query(KeyEcho), "no echo once classroom mode is off"


async def test_projector_maximizes_the_focused_machine_panel(app_for: Any) -> None:
    """On the plain machine screen classroom mode maximizes the focused panel (the code panel at first)."""
    app = app_for(demo_machine())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MachineScreen)
        app.action_toggle_projector()
        await pilot.pause()
        assert screen.maximized is not None and screen.maximized.id == "code"
        await pilot.press("s")
        await pilot.pause()
        echo = screen.query_one(KeyEcho)
        assert str(echo.render()) == "s  Step" and echo.region.height == 3, "visible over the maximized panel"
        app.action_toggle_projector()
        await pilot.pause()
        assert screen.maximized is None


async def test_home_lists_lessons_and_opens_free_play() -> None:
    """Every shipped lesson is listed with title, topics, minutes and progress; f opens free play, Esc returns."""
    app = make_app(demo_machine(), home=True)
    async with app.run_test(size=(160, 50)) as pilot:
        home = await home_screen(pilot)
        table = home.query_one(DataTable)
        assert table.row_count == 1 + len(home.entries) and len(home.entries) >= 3
        first = home.entries[0]
        assert first.lesson is not None
        row = table.get_row(str(first.path))
        assert row[1] == first.lesson.title and row[2] == str(first.lesson.minutes) and row[3] == "not started"
        assert row[5] == ", ".join(first.lesson.topics)
        assert table.cursor_row == 1, "the cursor starts on the first lesson"
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FreePlayScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is home


async def test_enter_opens_the_highlighted_lesson() -> None:
    """Down, Enter: the second lesson opens at its first step."""
    app = make_app(home=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await home_screen(pilot)
        await pilot.press("down", "enter")
        screen = await lesson_screen(pilot)
        assert screen.session.lesson.name == "02-system-calls" and screen.session.index == 0


def test_serve_builds_a_localhost_server() -> None:
    """`vizvm serve --port N` makes a textual-serve Server for this interpreter's vizvm, on localhost."""
    server = build_server(8765)
    assert (server.host, server.port, server.title) == ("localhost", 8765, "vizvm")
    assert server.command == serve_command() and server.command.endswith("-m vizvm")
    assert sys.executable in server.command
    assert build_server(8000, projector=True).command.endswith("-m vizvm --projector")


def test_serve_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser accepts serve and --projector (before or after the command); run_serve serves the server."""
    args = build_parser().parse_args(["--projector", "serve", "--port", "9001"])
    assert args.command == "serve" and args.port == 9001 and args.projector
    assert build_parser().parse_args(["lesson", "01", "--projector"]).projector
    assert not build_parser().parse_args([]).projector
    served: list[Any] = []
    from textual_serve.server import Server

    monkeypatch.setattr(Server, "serve", lambda self, debug=False: served.append(self))
    assert run_serve(argparse.Namespace(port=9002, projector=False)) == 0
    assert served and served[0].port == 9002


def test_launch_routes_commands_to_the_right_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vizvm` and `vizvm lesson NAME` start on the home screen; `vizvm run` does not."""
    import vizvm.app
    from vizvm.launch import launch_app

    made: list[dict[str, Any]] = []

    class Stub:
        return_code = 0

        def run(self) -> None:
            """Do not start a terminal app."""

    def fake_make_app(*args: Any, **kwargs: Any) -> Stub:
        made.append(kwargs)
        return Stub()

    monkeypatch.setattr(vizvm.app, "make_app", fake_make_app)
    parser = build_parser()
    launch_app(parser.parse_args([]))
    launch_app(parser.parse_args(["--projector", "lesson", "03", "--seed", "4"]))
    launch_app(parser.parse_args(["run", "hello"]))
    assert made[0]["home"] and made[0]["lesson"] is None and not made[0]["projector"]
    assert made[1]["home"] and made[1]["lesson"] == "03" and made[1]["seed"] == 4 and made[1]["projector"]
    assert not made[2]["home"]
