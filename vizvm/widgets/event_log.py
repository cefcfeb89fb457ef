"""The event log: the engine's events for the recorded steps, newest at the bottom, filterable by kind.

Built on the Line API so only the visible lines are formatted, however many events the window holds.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vizvm.messages import JumpToStep
from vizvm.viewmodel import EventLogState
from vizvm.widgets.panel import PanelMixin

KIND_STYLE = {
    "instr": "instr", "trap": "trap", "iret": "trap", "walk": "walk", "pte-update": "walk", "tlb": "tlb",
    "tlb-fill": "tlb", "tlb-evict": "tlb", "tlb-flush": "tlb", "mem": "mem", "io": "io", "cr": "cr",
    "irq": "trap", "halt": "halt",
}


class EventLog(PanelMixin, ScrollView, can_focus=True):
    """One line per event; follows the newest step unless scrolled up; click a line to go to its step."""

    PANEL_NUMBER = 5
    PANEL_TITLE = "Event log"
    COMPONENT_CLASSES = {"log--step", "log--now", "log--instr", "log--trap", "log--walk", "log--tlb",
                         "log--mem", "log--io", "log--cr", "log--halt"}

    state: reactive[EventLogState | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()
        self._follow = True

    def watch_state(self, state: EventLogState | None) -> None:
        """New lines: resize the virtual area and stick to the bottom if following."""
        if state is None:
            return
        shown = "all kinds" if state.kinds is None else f"{len(state.kinds)} kinds"
        self.set_detail(f"{len(state.events)} events · {shown}")
        self.virtual_size = Size(self.scrollable_content_region.width, len(state.events))
        if self._follow:
            self.call_after_refresh(self._to_end)
        self.refresh()

    def _to_end(self) -> None:
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Stop following when the user scrolls up; follow again at the bottom."""
        super().watch_scroll_y(old, new)
        if new < old and new < self.max_scroll_y:  # the user scrolled up (not a shrinking log)
            self._follow = False
        elif new >= self.max_scroll_y:
            self._follow = True

    def on_click(self, event: events.Click) -> None:
        """Go to the step of the clicked line (the state right after it)."""
        state = self.state
        offset = event.get_content_offset(self)
        if offset is None:
            return
        line = int(self.scroll_y) + offset.y
        if state is not None and 0 <= line < len(state.events):
            self.post_message(JumpToStep(state.events[line].step + 1))

    def render_line(self, y: int) -> Strip:
        """Format one visible event."""
        state = self.state
        width = self.scrollable_content_region.width
        index = int(self.scroll_y) + y
        if state is None or index >= len(state.events):
            return Strip.blank(width, self.rich_style)
        event = state.events[index]
        now = event.step == state.current - 1
        base = self.rich_style
        overlay = Style(bgcolor=self.get_component_rich_style("log--now").bgcolor) if now else Style()
        kind_style = self.get_component_rich_style(f"log--{KIND_STYLE.get(event.kind, 'instr')}") + overlay
        step_style = self.get_component_rich_style("log--step") + overlay
        text = event.describe()
        segments = [Segment(f"{'▶' if now else ' '}{event.step:>7} ", step_style), Segment(text, kind_style)]
        strip = Strip(segments).crop_extend(0, width, base + overlay)
        return strip
