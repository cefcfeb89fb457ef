"""Progress and answers saved per user: atomic file, damaged file replaced, resume where the student stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.app.lesson_helpers import home_screen, lesson_screen
from vizvm.app import make_app
from vizvm.progress import Answer, LessonProgress, ProgressStore
from vizvm.screens.lesson import LessonScreen


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """VIZVM_DATA_DIR in a temporary directory."""
    directory = tmp_path / "data"
    monkeypatch.setenv("VIZVM_DATA_DIR", str(directory))
    return directory


def test_store_round_trip_is_atomic(data_dir: Path) -> None:
    """Saved progress reads back equal; no temporary file is left beside it."""
    store = ProgressStore()
    assert store.path == data_dir / "progress.json" and store.problem is None
    store.put("01-x", LessonProgress(step=2, total=5, seed=7, answers={0: Answer("1", True), 1: Answer("3", False)}))
    again = ProgressStore().get("01-x")
    assert again is not None and again.step == 2 and again.seed == 7 and again.answers[1] == Answer("3", False)
    assert again.summary() == "step 3 of 5" and again.score() == "1/2 right"
    assert sorted(p.name for p in data_dir.iterdir()) == ["progress.json"]
    store.forget("01-x")
    assert ProgressStore().get("01-x") is None


@pytest.mark.parametrize("damage", ["{not json", '{"lessons": []}', '{"lessons": {"a": {"step": -1}}}',
                                    '{"lessons": {"a": {"answers": {"x": 1}}}}'])
def test_damaged_file_is_reported_and_replaced(data_dir: Path, damage: str) -> None:
    """A file that does not parse is moved aside, reported once, and a fresh one is written on save."""
    data_dir.mkdir()
    (data_dir / "progress.json").write_text(damage)
    store = ProgressStore()
    assert store.problem is not None and "damaged" in store.problem and store.lessons == {}
    assert (data_dir / "progress.json.corrupt").read_text() == damage
    store.put("a", LessonProgress(total=3))
    assert json.loads((data_dir / "progress.json").read_text())["lessons"]["a"]["total"] == 3


async def test_resume_where_the_student_stopped(data_dir: Path) -> None:
    """Answer two questions, leave; the home screen shows the place and score; reopening resumes exactly."""
    app = make_app(home=True, lesson="01")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        session.answer_with("1")
        session.next()
        session.answer_with("2")
        session.next()  # step 3 (no question) runs at once
        screen.lesson_moved()
        await pilot.pause()
        left_at = session.runner.machine.snapshot()
        screen.action_step()  # free steps are not progress
        await pilot.pause()
        await pilot.press("escape")
        home = await home_screen(pilot)
        table = home.query_one(DataTable)
        row = table.get_row(str(session.lesson.path))
        assert row[3] == "step 3 of 5" and row[4] == "1/2 right"
        home.action_open()  # the cursor is still on lesson 1
        screen = await lesson_screen(pilot)
        resumed = screen.session
        assert resumed is not session and resumed.index == 2 and not resumed.asking
        assert resumed.runner.machine.snapshot() == left_at
        assert resumed.progress.score() == "1/2 right"


async def test_done_and_restart(data_dir: Path) -> None:
    """The last step marks the lesson done on the home screen; R forgets it."""
    app = make_app(home=True, lesson="05")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        while True:
            if session.asking:
                session.next()
            if not session.next():
                break
        screen.action_leave()
        home = await home_screen(pilot)
        key = str(session.lesson.path)
        assert home.query_one(DataTable).get_row(key)[3] == "done ✓"
        home.query_one(DataTable).move_cursor(row=home.query_one(DataTable).get_row_index(key))
        home.action_forget()
        await pilot.pause()
        assert home.query_one(DataTable).get_row(key)[3] == "not started"


async def test_damaged_progress_file_is_reported_in_the_app(data_dir: Path) -> None:
    """The app starts, lists lessons and says the progress file was replaced."""
    data_dir.mkdir()
    (data_dir / "progress.json").write_text("][")
    app = make_app(home=True)
    said: list[str] = []
    app.notify = lambda message, **_: said.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        home = await home_screen(pilot)
        assert any("damaged" in message for message in said)
        assert home.query_one(DataTable).row_count == 1 + len(home.entries)


async def test_new_seed_starts_over(data_dir: Path) -> None:
    """Opening a lesson with another --seed is a new problem: saved answers are dropped."""
    store = ProgressStore()
    store.put("03-paging", LessonProgress(step=1, total=6, seed=3, answers={0: Answer("5", False)}))
    app = make_app(home=True, lesson="03", seed=11)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        assert isinstance(screen, LessonScreen)
        assert screen.session.index == 0 and screen.session.runner.seed == 11 and screen.session.asking
        assert not screen.session.progress.answers


def test_progress_and_session_stay_headless() -> None:
    """Progress, the lesson session and the serve command load without textual or rich (a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys, vizvm.progress, vizvm.lesson_session, vizvm.serve; "
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_session_previous_restores_every_step_exactly(data_dir: Path) -> None:
    """Headless: walking back through lesson 2 gives each step's machine, checks and step count exactly."""
    from engine.lesson import load_lesson
    from vizvm.lesson_session import LessonSession
    from vizvm.locations import find_lesson

    session = LessonSession(load_lesson(find_lesson("02")), store=ProgressStore())
    session.start()
    seen = {}
    while True:
        if session.asking:
            question = session.question
            assert question is not None
            session.answer_with(str(question.answer + 1) if question.kind == "choice" else hex(question.answer))
        seen[session.index] = (session.runner.machine.snapshot(), session.checks, session.steps_run)
        if not session.next():
            break
    assert session.progress.done and all(check.ok for _, checks, _ in seen.values() for check in checks)
    while session.previous():
        assert (session.runner.machine.snapshot(), session.checks, session.steps_run) == seen[session.index]
    assert session.index == 0 and ProgressStore().get("02-system-calls") is not None
