"""The lesson player end to end: questions asked before the action, answers scored, exact rewind, focus."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Static

from tests.app.lesson_helpers import lesson_screen, reference_state, write_bad_lesson
from vizvm.app import make_app
from vizvm.commands import command_entries
from vizvm.screens.dialogs import ErrorDialog
from vizvm.widgets.cpu import CpuPanel
from vizvm.widgets.lesson_pane import StepResults
from vizvm.widgets.question import QuestionBox
from vizvm.widgets.timeline import TrapTimeline


@pytest.fixture(autouse=True)
def private_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Progress goes to a temporary directory, never the real home."""
    monkeypatch.setenv("VIZVM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def reveal_text(box: QuestionBox) -> str:
    """What the reveal line says."""
    return str(box.query_one("#question-reveal", Static).render())


async def test_answers_right_and_wrong_are_scored_and_revealed() -> None:
    """Lesson 1: the question waits before the action; a right and a wrong answer are revealed and saved."""
    app = make_app(home=True, lesson="01")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session, box = screen.session, screen.query_one(QuestionBox)
        assert session.asking and session.runner.machine.steps == 0, "the action waits for the answer"
        assert box.query_one(OptionList).display and box.has_class("-asking")
        box.post_message(QuestionBox.Answered("1"))  # ring 0: right
        await pilot.pause()
        assert not session.asking and session.runner.machine.steps == 1
        assert "Right" in reveal_text(box) and box.has_class("-right")
        assert all(check.ok for check in session.checks) and session.checks
        screen.action_lesson_next()
        await pilot.pause()
        assert session.index == 1 and session.asking
        box.post_message(QuestionBox.Answered("2"))  # "it faults": wrong
        await pilot.pause()
        text = reveal_text(box)
        assert "Not quite" in text and "You said: 2. It faults" in text and "Answer: 1. It executes" in text
        assert box.has_class("-wrong")
        assert [a.correct for a in session.progress.answers.values()] == [True, False]
        assert session.progress.score() == "1/2 right"
        results = screen.query_one(StepResults)
        assert results.lines is not None and "run until a cr event" in results.lines[0]


async def test_next_and_previous_rewind_the_machine_exactly() -> None:
    """Lesson 2: the state after each step equals a headless run; previous restores it bit for bit."""
    app = make_app(home=True, lesson="02")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        machine = session.runner.machine
        after_first = machine.snapshot()
        assert after_first == reference_state("02", 1)
        screen.action_lesson_next()  # step 2 asks a number question first
        await pilot.pause()
        assert session.asking and machine.snapshot() == after_first
        screen.query_one(QuestionBox).post_message(QuestionBox.Answered("0x17"))  # 23 in hex
        await pilot.pause()
        assert session.answer is not None and session.answer.correct
        after_second = machine.snapshot()
        screen.action_lesson_next()
        await pilot.pause()
        assert session.index == 2 and session.asking
        screen.query_one(QuestionBox).post_message(QuestionBox.Answered("2"))
        await pilot.pause()
        assert machine.snapshot() == reference_state("02", 3)
        screen.action_lesson_previous()
        await pilot.pause()
        assert session.index == 1 and not session.asking, "an answered question is not asked again"
        assert machine.snapshot() == after_second
        assert screen.bridge.machine.steps == machine.steps
        assert screen.bridge.recording.hi == machine.steps, "the panels show the rewound machine"
        screen.action_lesson_previous()
        await pilot.pause()
        assert session.index == 0 and machine.snapshot() == after_first


async def test_free_stepping_then_next_runs_from_where_the_lesson_left() -> None:
    """Stepping and rewinding freely inside a step does not change what the next step does."""
    app = make_app(home=True, lesson="02")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        screen.action_step()
        screen.action_step()
        screen.action_step_back()
        screen.action_step_back()
        screen.action_step_back()
        await pilot.pause()
        screen.action_lesson_next()
        screen.action_lesson_next()  # reveal without answering: not scored
        await pilot.pause()
        session = screen.session
        assert session.answer is None and "Not answered" in reveal_text(screen.query_one(QuestionBox))
        assert session.runner.machine.snapshot() == reference_state("02", 2)


async def test_bad_answers_are_explained_not_scored() -> None:
    """An answer that is not a number, or a choice out of range, says why and keeps asking."""
    app = make_app(home=True, lesson="01")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        box = screen.query_one(QuestionBox)
        box.post_message(QuestionBox.Answered("7"))
        await pilot.pause()
        problem = box.query_one("#question-problem", Static)
        assert problem.display and "Choose 1 to 2" in str(problem.render())
        box.post_message(QuestionBox.Answered("ring"))
        await pilot.pause()
        assert "not a choice number" in str(problem.render())
        assert screen.session.asking and not screen.session.progress.answers


async def test_keys_answer_next_previous() -> None:
    """Real keys: a digit answers a choice, n goes on, p and PageUp go back, typing fills a number answer."""
    app = make_app(home=True, lesson="02")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        await pilot.press("n")
        await pilot.pause()
        assert session.index == 1 and session.asking
        assert isinstance(app.focused, Input), "the answer field has the keyboard"
        await pilot.press("2", "3", "enter")
        await pilot.pause()
        assert session.answer is not None and session.answer.correct
        await pilot.press("pagedown")
        await pilot.pause()
        assert session.index == 2 and isinstance(app.focused, OptionList)
        await pilot.press("2")
        await pilot.pause()
        assert session.answer is not None and session.answer.correct and not session.asking
        await pilot.press("p")
        await pilot.pause()
        assert session.index == 1
        await pilot.press("pageup")
        await pilot.pause()
        assert session.index == 0


async def test_focus_highlights_panels_and_items() -> None:
    """The step's focus list marks panels, names the item, and selects the newest timeline transition."""
    app = make_app(home=True, lesson="01")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        cpu = screen.query_one(CpuPanel)
        assert cpu.has_class("-lesson-focus") and "ring" in str(cpu.border_subtitle)
        assert cpu.spotlight == {"ring"}, "the ring label itself is highlighted"
        assert not screen.query_one(TrapTimeline).has_class("-lesson-focus")
        screen.session.answer_with("1")
        screen.session.next()
        screen.session.next()
        screen.session.next()  # step 3: iret into ring 3, focus timeline:last
        screen.lesson_moved()
        await pilot.pause()
        timeline = screen.query_one(TrapTimeline)
        assert timeline.has_class("-lesson-focus") and timeline.selected == -1
        assert not screen.query_one("#code").has_class("-lesson-focus")
        await pilot.resize_terminal(100, 30)  # the compact layout recomposes the panels
        await pilot.pause()
        await pilot.pause()
        assert screen.compact and screen.query_one(TrapTimeline).has_class("-lesson-focus")
        assert screen.query_one(CpuPanel).has_class("-lesson-focus")
        assert "step 3 of 5" in str(screen.query_one("#lesson").border_title)


async def test_virtualized_lesson_runs_to_the_end() -> None:
    """Lesson 4 drives a Hypervisor: every step runs in the player and every check passes."""
    app = make_app(home=True, lesson="04")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        while True:
            if session.asking:
                question = session.question
                assert question is not None
                session.answer_with(str(question.answer + 1) if question.kind == "choice" else str(question.answer))
            assert all(check.ok for check in session.checks), session.checks
            if not session.next():
                break
        screen.lesson_moved()
        await pilot.pause()
        assert session.progress.done and session.at_end
        assert session.progress.right == session.question_count


async def test_lesson_commands_in_help_and_palette() -> None:
    """The lesson commands are in the command registry (help and palette); p no longer means page fault."""
    app = make_app(home=True, lesson="03")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        entries = {entry.action: entry for entry in command_entries(app, screen)}
        assert entries["lesson_next"].keys == "n pgdn"
        assert entries["lesson_previous"].keys == "p pgup"
        assert entries["run_until('page-fault')"].keys == "P"
        assert "toggle_projector" in entries
        assert screen.check_action("load_program", ()) is None and screen.check_action("choose_mode", ()) is None
        machine = screen.bridge.machine
        await pilot.press("v")
        await pilot.pause()
        assert screen.bridge.machine is machine is screen.session.runner.machine, "the lesson keeps its machine"


async def test_malformed_lesson_shows_its_error(tmp_path: Path) -> None:
    """A lesson with an unknown field opens a dialog naming file, step and field, over the home screen."""
    bad = write_bad_lesson(tmp_path)
    app = make_app(home=True, lesson=str(bad))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert "99-broken.toml: step 2: field 'narraton': unknown field" in dialog.text
        assert "narration" in dialog.text, "the validator suggests the right name"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "HomeScreen"


async def test_unknown_lesson_name_shows_a_dialog() -> None:
    """`vizvm lesson nosuch` opens the app with the list of lessons in a dialog."""
    app = make_app(home=True, lesson="nosuch")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog) and "01-privileged-instructions" in app.screen.text


async def test_n_and_p_work_while_the_number_field_has_the_keyboard() -> None:
    """The answer field takes digits and hex, but n still reveals and p still goes back (they are no digits)."""
    app = make_app(home=True, lesson="02")
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await lesson_screen(pilot)
        session = screen.session
        await pilot.press("n")
        await pilot.pause()
        assert session.index == 1 and session.asking and isinstance(app.focused, Input)
        await pilot.press("1", "a", "n")
        await pilot.pause()
        assert not session.asking and session.answer is None, "n revealed without answering (not scored)"
        assert screen.query_one("#question-input", Input).value == "1a"
        await pilot.press("p")
        await pilot.pause()
        assert session.index == 0
