"""The timeline scrubber: where the machine is between step 0 and the furthest step reached."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.messages import JumpToStep

LABEL_WIDTH = 26


class Scrubber(Widget, can_focus=True):
    """A one-line bar; click or drag to jump, left/right move by 1%, home/end jump to the ends."""

    COMPONENT_CLASSES = {"scrubber--done", "scrubber--rest", "scrubber--knob", "scrubber--label"}
    BINDINGS = [
        Binding("left", "nudge(-1)", "Earlier", show=False),
        Binding("right", "nudge(1)", "Later", show=False),
        Binding("home", "to_start", "Start", show=False),
        Binding("end", "to_end", "End", show=False),
    ]

    position: reactive[tuple[int, int]] = reactive((0, 0))
    """(current step, furthest step)."""

    def _bar_width(self) -> int:
        return max(self.content_size.width - LABEL_WIDTH, 4)

    def _jump(self, step: int) -> None:
        current, furthest = self.position
        self.post_message(JumpToStep(max(0, min(step, furthest))))

    def action_nudge(self, direction: int) -> None:
        """Move by one percent of the known timeline (at least one step)."""
        current, furthest = self.position
        self._jump(current + direction * max(1, furthest // 100))

    def action_to_start(self) -> None:
        """Jump to step 0."""
        self._jump(0)

    def action_to_end(self) -> None:
        """Jump to the furthest step reached."""
        self._jump(self.position[1])

    def _step_at(self, x: int) -> int:
        width = self._bar_width()
        return round(max(0, min(x - LABEL_WIDTH, width - 1)) * self.position[1] / max(width - 1, 1))

    def on_click(self, event: events.Click) -> None:
        """Jump to the clicked point."""
        if event.x >= LABEL_WIDTH:
            self._jump(self._step_at(event.x))

    def render(self) -> RenderableType:
        """``step 120 / 4000  ━━━━●───────``."""
        current, furthest = self.position
        width = self._bar_width()
        knob = round(current * (width - 1) / furthest) if furthest else 0
        label = f" step {current:,} / {furthest:,}"
        return Text.assemble(
            (f"{label:<{LABEL_WIDTH}}", self.get_component_rich_style("scrubber--label", partial=False)),
            ("━" * knob, self.get_component_rich_style("scrubber--done", partial=False)),
            ("●", self.get_component_rich_style("scrubber--knob", partial=False)),
            ("─" * (width - knob - 1), self.get_component_rich_style("scrubber--rest", partial=False)),
            no_wrap=True,
        )
