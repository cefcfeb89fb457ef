"""A predict-then-reveal question: asked before the step's action runs, revealed after it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.lesson import ResolvedQuestion
from vizvm.progress import Answer

NUMBER_CHARACTERS = r"[0-9a-fA-FxX_ ]*"
"""What a number or address answer may contain: decimal, or hex with 0x."""


class AnswerInput(Input):
    """The number answer field: it takes only the characters a number can hold, so the lesson's own keys
    (n next, p previous) still work while it has the keyboard."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        """Consume only characters a decimal or 0x-hex number may contain."""
        return character is not None and len(character) == 1 and character in "0123456789abcdefABCDEFxX_ "


class ChoiceList(OptionList):
    """The choices of a question; Enter or a digit answers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(str(number), f"choose({number})", f"Choice {number}", show=False) for number in range(1, 10)
    ]

    def action_choose(self, number: int) -> None:
        """Answer with choice `number` (1-based) if it exists."""
        if number <= self.option_count:
            self.highlighted = number - 1
            self.action_select()


class QuestionBox(Vertical):
    """Prompt, then choice list or answer field; after the action, the answer and its explanation."""

    class Answered(Message):
        """The student submitted `text` (a choice number, or a number as typed)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        """Heading, prompt, both answer widgets (one shown), problem line and reveal."""
        yield Static("Predict", id="question-heading")
        yield Static(id="question-prompt")
        yield ChoiceList(id="question-choices")
        yield AnswerInput(placeholder="your answer: decimal, or hex with 0x", restrict=NUMBER_CHARACTERS,
                          id="question-input")
        yield Static(id="question-problem")
        yield Static(id="question-reveal")

    def show(self, question: ResolvedQuestion | None, asking: bool, answer: Answer | None) -> None:
        """Ask `question` (asking), or reveal its answer next to the student's `answer`."""
        self.display = question is not None
        if question is None:
            return
        self.set_class(asking, "-asking")
        self.query_one("#question-heading", Static).update(
            "Predict, then see: answer before the action runs" if asking else "Your prediction")
        self.query_one("#question-prompt", Static).update(Text(question.prompt))
        choices = self.query_one(ChoiceList)
        field = self.query_one(Input)
        choices.display = question.kind == "choice" and asking
        field.display = question.kind != "choice" and asking
        self.problem("")
        if asking:
            if question.kind == "choice":
                choices.set_options(Option(Text(f"{n}. {choice}"), id=str(n))
                                    for n, choice in enumerate(question.choices, 1))
                choices.highlighted = 0
            else:
                field.value = ""
                field.placeholder = ("an address, e.g. 0x00400000" if question.kind == "address"
                                     else "a number: decimal, or hex with 0x")
        reveal = self.query_one("#question-reveal", Static)
        reveal.update(self._reveal(question, answer) if not asking else "")
        reveal.display = not asking
        self.set_class(not asking and answer is not None and answer.correct, "-right")
        self.set_class(not asking and answer is not None and not answer.correct, "-wrong")

    def focus_answer(self) -> None:
        """Put the keyboard on the visible answer widget."""
        for widget in (self.query_one(ChoiceList), self.query_one(Input)):
            if widget.display:
                widget.focus()

    def problem(self, text: str) -> None:
        """Say why an answer was not accepted ('' clears)."""
        line = self.query_one("#question-problem", Static)
        line.update(text)
        line.display = bool(text)

    @staticmethod
    def _reveal(question: ResolvedQuestion, answer: Answer | None) -> Text:
        out = Text()
        if answer is None:
            out.append("Not answered.", style="bold")
        else:
            out.append("✓ Right!" if answer.correct else "✗ Not quite.", style="bold")
            said = answer.response
            if question.kind == "choice" and said.isdigit() and 1 <= int(said) <= len(question.choices):
                said = f"{said}. {question.choices[int(said) - 1]}"
            if not answer.correct:
                out.append(f"\nYou said: {said}")
        out.append(f"\nAnswer: {question.answer_text()}")
        if question.explanation.strip():
            out.append("\n\n" + question.explanation.strip())
        return out

    @on(OptionList.OptionSelected, "#question-choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Answered(str(event.option_index + 1)))

    @on(Input.Submitted, "#question-input")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Answered(event.value))
