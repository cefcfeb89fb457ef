"""The lesson pane beside the machine: narration, step k of n, the question, and what the action showed."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Markdown, Static

from vizvm.lesson_session import Check, LessonSession, describe_action
from vizvm.widgets.question import QuestionBox


class StepResults(Widget):
    """The action that ran and each expectation, ✓ or ✗ with the failure in words."""

    COMPONENT_CLASSES = {"results--ok", "results--fail", "results--muted", "results--action"}
    DEFAULT_CSS = "StepResults { height: auto; }"

    lines: reactive[tuple[str, tuple[Check, ...]] | None] = reactive(None, layout=True)
    """(the action in words, the checks), or None before the action runs."""

    def render(self) -> RenderableType:
        """One line for the action, one per check."""
        if self.lines is None:
            return Text("")
        action, checks = self.lines
        styles = {name: self.get_component_rich_style(f"results--{name}")
                  for name in ("ok", "fail", "muted", "action")}
        out = Text()
        out.append("▶ ", style=styles["action"])
        out.append(action, style=styles["action"])
        for check in checks:
            out.append("\n")
            out.append("✓ " if check.ok else "✗ ", style=styles["ok" if check.ok else "fail"])
            out.append(check.text, style=styles["muted"] if check.ok else styles["fail"])
        return out


class LessonPane(Vertical):
    """Shows a LessonSession; the screen calls `show` after every move."""

    def __init__(self, session: LessonSession, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.session = session

    def on_mount(self) -> None:
        """Draw the session as it is (also after the screen recomposes for a new size)."""
        self.show(self.session)

    def compose(self) -> ComposeResult:
        """Lesson title, step line, scrolling body (narration, question, results), key hint."""
        yield Static(id="lesson-title")
        yield Static(id="lesson-step")
        with VerticalScroll(id="lesson-body"):
            yield Markdown(id="lesson-narration")
            yield QuestionBox(id="question")
            yield StepResults(id="lesson-results")
        yield Static(id="lesson-hint")

    def show(self, session: LessonSession) -> None:
        """Draw the step the session shows."""
        step, index, total = session.step, session.index, session.total
        self.border_title = f"Lesson · step {index + 1} of {total}"
        self.query_one("#lesson-title", Static).update(Text(session.lesson.title))
        dots = "".join("●" if n < index else "◉" if n == index else "○" for n in range(total))
        line = Text(f"{dots}  ")
        line.append(f"{index + 1}. {step.title}", style="bold")
        self.query_one("#lesson-step", Static).update(line)
        self.query_one(Markdown).update(step.narration.strip())
        box = self.query_one(QuestionBox)
        box.show(session.question, session.asking, session.answer)
        results = self.query_one(StepResults)
        if session.asking:
            results.lines = None
        else:
            ran = f" · ran {session.steps_run:,} step{'s' if session.steps_run != 1 else ''}" \
                if session.steps_run else ""
            results.lines = (f"{describe_action(step.action)}{ran}", session.checks)
        results.display = not session.asking
        self.query_one("#lesson-hint", Static).update(self._hint(session))
        self.query_one("#lesson-body", VerticalScroll).scroll_home(animate=False)

    @staticmethod
    def _hint(session: LessonSession) -> Text:
        out = Text()

        def key(name: str, what: str) -> None:
            out.append(f" {name} ", style="reverse bold")
            out.append(f" {what}  ")

        if session.asking:
            key("enter", "answer")
            key("n", "reveal without answering")
        elif session.at_end:
            out.append("Last step done. ")
            key("esc", "lessons")
        else:
            key("n", "next")
        key("p", "previous")
        if not session.asking and not session.at_end:
            out.append("\nExplore freely (s, b, r…): the next step starts where this one left the machine.")
        return out
