"""The lesson screen: the machine screen with the lesson pane beside it, driving the lesson's own machine.

The bridge adopts the lesson runner's TimeMachine, so the student can step, run and rewind freely in
the middle of a lesson; `n` then runs the next step's action from where the lesson left the machine
(see vizvm.lesson_session). Each step's focus list highlights panels (a heavy accent border and a
subtitle naming the item, e.g. ``lesson: ring``); ``timeline:last`` selects the newest transition.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget

from engine.machine import Machine
from vizvm.lesson_session import LessonSession
from vizvm.screens.machine import MOVE, PANEL_IDS, MachineScreen
from vizvm.widgets.cpu import CpuPanel
from vizvm.widgets.lesson_pane import LessonPane
from vizvm.widgets.question import QuestionBox
from vizvm.widgets.timeline import TrapTimeline

LESSON = Binding.Group("Lesson")
LEAVE = Binding.Group("Leave the lesson")

FOCUS_PANELS: dict[str, str] = {"code": "code", "cpu": "cpu", "timeline": "timeline", "memory": "mapper",
                                "io": "io", "log": "events", "vmm": "vmm", "lesson": "lesson"}
"""Panel names in lesson files -> widget ids on this screen."""


class LessonScreen(MachineScreen):
    """Every machine panel, plus the lesson pane on the right."""

    CSS_PATH: ClassVar[Any] = ["../styles/machine.tcss", "../styles/lesson.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "lesson_next", "Next", tooltip="Lesson: reveal the answer, or go to the next step",
                group=LESSON, priority=True),
        Binding("pagedown", "lesson_next", "Next", group=LESSON, show=False),
        Binding("p", "lesson_previous", "Previous",
                tooltip="Lesson: back one step (the machine rewinds exactly)", group=MOVE, priority=True),
        Binding("pageup", "lesson_previous", "Previous", group=MOVE, show=False),
        Binding("a", "answer", "Answer", tooltip="Lesson: put the keyboard on the question", group=LESSON,
                show=False),
        Binding("escape", "leave", "Lessons", tooltip="Back to the lesson list (progress is saved)",
                group=LEAVE),
        Binding("ctrl+r", "restart_lesson", "Restart lesson",
                tooltip="Lesson: forget the answers and start again at step 1", group=LESSON, show=False),
        Binding("P", "run_until('page-fault')", "Next #PF", tooltip="Run until the next page fault",
                group=Binding.Group("Run and step"), show=False),
    ]

    def __init__(self, session: LessonSession) -> None:
        machine = cast(Machine, session.runner.machine)
        super().__init__(machine, session.lesson.title)
        self.session = session
        self.bridge.adopt(session.runner.travel, session.lesson.title)
        self._lesson_hidden: set[str] = set()
        self._lesson_breakpoints: set[int] = set()
        self.projector = False

    def compose(self) -> ComposeResult:
        """The machine screen's widgets, and the lesson pane."""
        yield from super().compose()
        yield LessonPane(self.session, id="lesson")

    def on_mount(self) -> None:
        """Once the machine screen is attached, show the lesson's state (in classroom mode if it is on)."""
        self.projector = bool(getattr(self.app, "projector", False))
        self.call_later(self.lesson_moved)

    # ------------------------------------------------------------------ lesson state down
    def lesson_moved(self) -> None:
        """The session moved: resync the bridge, apply panels and breakpoints, highlight, redraw the pane."""
        runner = self.session.runner
        self.bridge.breakpoints = (self.bridge.breakpoints - self._lesson_breakpoints) | runner.breakpoints
        self._lesson_breakpoints = set(runner.breakpoints)
        wanted = {FOCUS_PANELS[name] for name in runner.hidden_panels}
        self.hidden = (self.hidden - (self._lesson_hidden - wanted)) | wanted
        self._lesson_hidden = wanted
        self._highlight()
        self.bridge.resync()
        sub = runner.substep
        if sub is not None:  # the lesson stopped on one walk reference: the mapper shows the walk up to it
            self.bridge.show_substep(sub.step, sub.revealed, len(sub.references))
        pane = self.query_one(LessonPane)
        pane.show(self.session)
        if self.session.asking:
            self.call_after_refresh(pane.query_one(QuestionBox).focus_answer)
        elif self.focused is not None and pane in self.focused.ancestors:
            self.set_focus(None)
        self.refresh_bindings()

    def _focus_items(self) -> dict[str, list[str]]:
        """Widget id -> the items named for it (``cpu:ring`` -> ``{"cpu": ["ring"]}``) for the shown step."""
        items: dict[str, list[str]] = {}
        for entry in self.session.step.focus:
            name, _, item = entry.partition(":")
            items.setdefault(FOCUS_PANELS[name], []).append(item)
        return items

    def _mark_focus(self) -> None:
        """Accent border and a subtitle naming the items on the focused panels (again after a recompose)."""
        items = self._focus_items()
        for panel_id, panel in self._panels():
            wanted = panel_id in items
            panel.set_class(wanted, "-lesson-focus")
            named = [item for item in items.get(panel_id, []) if item]
            panel.border_subtitle = ("◆ look here" + (f": {', '.join(named)}" if named else "")) if wanted else ""
        self.query_one(CpuPanel).spotlight = frozenset(items.get("cpu", ()))

    def _highlight(self) -> None:
        items = self._focus_items()
        for panel_id in items:
            if panel_id in self.hidden and panel_id not in self._lesson_hidden:
                self.hidden.discard(panel_id)
        if "timeline" in items:
            self.query_one(TrapTimeline).selected = -1
        self._apply_layout()

    def _panels(self) -> list[tuple[str, Widget]]:
        return [(panel_id, self.query_one(f"#{panel_id}")) for panel_id in PANEL_IDS.values()]

    def _apply_layout(self) -> None:
        self._mark_focus()
        if self.projector:
            focus = {FOCUS_PANELS[e.partition(":")[0]] for e in self.session.step.focus} - {"lesson"}
            keep = self.hidden | (set(PANEL_IDS.values()) - (focus or {"code", "cpu"}))
            saved, self.hidden = self.hidden, keep
            super()._apply_layout()
            self.hidden = saved
        else:
            super()._apply_layout()
        self.query_one(LessonPane).display = "lesson" not in self.hidden

    def set_projector(self, on: bool) -> None:
        """Presentation layout: only the panels the step focuses on (code and CPU if none), beside the lesson."""
        self.projector = on
        self._apply_layout()
        self.refresh_panels()

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Loading another program or switching mode would leave the lesson's machine: greyed out here."""
        if action in ("load_program", "choose_mode"):
            return None
        if action == "lesson_previous" and self.session.index == 0:
            return None
        return super().check_action(action, parameters)

    def action_lesson_next(self) -> None:
        """Reveal the waiting answer, or go to the next step (its action runs)."""
        if not self.session.next():
            self.notify("That was the last step. Esc goes back to the lessons.", title="Lesson done", timeout=4)
        self.lesson_moved()

    def action_lesson_previous(self) -> None:
        """Back one step: the machine rewinds exactly."""
        if self.session.previous():
            self.lesson_moved()

    def action_answer(self) -> None:
        """Focus the question's answer widget."""
        if self.session.asking:
            self.query_one(QuestionBox).focus_answer()
        else:
            self.notify("No question is waiting for an answer on this step.", timeout=2)

    def action_restart_lesson(self) -> None:
        """Forget the answers and begin again."""
        self.session.restart()
        self.lesson_moved()

    def action_leave(self) -> None:
        """Back to the lesson list."""
        self.dismiss(None)

    @on(QuestionBox.Answered)
    def on_answered(self, message: QuestionBox.Answered) -> None:
        """Score the answer, run the action, reveal."""
        try:
            self.session.answer_with(message.text)
        except ValueError as problem:
            self.query_one(QuestionBox).problem(str(problem))
            return
        self.lesson_moved()
