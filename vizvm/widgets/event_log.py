"""The event log: the engine's events for the recorded steps, newest at the bottom, filterable by kind.

Built on the Line API so only the visible lines are formatted, however many events the window holds.
It scrolls itself (keys and mouse wheel) instead of being a ScrollView, because a ScrollView re-lays
out the whole screen whenever its virtual size changes, which is every step here.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from vizvm.messages import JumpToStep
from vizvm.viewmodel import EventLogState
from vizvm.widgets.panel import PanelMixin

KIND_STYLE = {
    "instr": "instr", "trap": "trap", "iret": "trap", "walk": "walk", "pte-update": "walk", "tlb": "tlb",
    "tlb-fill": "tlb", "tlb-evict": "tlb", "tlb-flush": "tlb", "mem": "mem", "io": "io", "cr": "cr",
    "irq": "trap", "halt": "halt",
    **dict.fromkeys(("vm-exit", "vm-entry", "emulate", "reflect", "hypercall", "bt-translate", "bt-hit",
                     "bt-invalidate", "vm-switch", "vm-stop", "nested-hit"), "vmm"),
    "fidelity": "halt",
}


class EventLog(PanelMixin, Widget, can_focus=True):
    """One line per event; follows the newest step unless scrolled up; click a line to go to its step."""

    PANEL_NUMBER = 5
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "Event log"
    COMPONENT_CLASSES = {"log--step", "log--now", "log--instr", "log--trap", "log--walk", "log--tlb",
                         "log--mem", "log--io", "log--cr", "log--halt", "log--vmm"}

    BINDINGS = [
        Binding("up", "scroll_lines(1)", "Older", show=False),
        Binding("down", "scroll_lines(-1)", "Newer", show=False),
        Binding("pageup", "scroll_lines(10)", "Page older", show=False),
        Binding("pagedown", "scroll_lines(-10)", "Page newer", show=False),
        Binding("end", "follow", "Follow", show=False, tooltip="Back to the newest events"),
    ]

    state: reactive[EventLogState | None] = reactive(None)
    back: reactive[int] = reactive(0)
    """Lines scrolled back from the newest (0 follows the newest step)."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()
        self._follow = True
        self._style_cache: tuple[str, dict[str, Style]] | None = None

    def watch_state(self, state: EventLogState | None) -> None:
        """New events: keep the view where it was relative to the newest line."""
        if state is None:
            return
        shown = "all kinds" if state.kinds is None else f"{len(state.kinds)} kinds"
        where = f" · {self.back} lines back" if self.back else ""
        self.set_detail(f"{len(state.events)} events · {shown}{where}")
        self.back = min(self.back, self._max_back())

    def _max_back(self) -> int:
        count = len(self.state.events) if self.state else 0
        return max(count - self.content_size.height, 0)

    def action_scroll_lines(self, lines: int) -> None:
        """Scroll toward older (positive) or newer (negative) events."""
        self.back = max(0, min(self._max_back(), self.back + lines))
        self.watch_state(self.state)

    def action_follow(self) -> None:
        """Follow the newest events again."""
        self.back = 0
        self.watch_state(self.state)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """Wheel up: older events."""
        self.action_scroll_lines(3)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        """Wheel down: newer events."""
        self.action_scroll_lines(-3)

    def _first_line(self) -> int:
        count = len(self.state.events) if self.state else 0
        return max(count - self.content_size.height - self.back, 0)

    def on_click(self, event: events.Click) -> None:
        """Go to the step of the clicked line (the state right after it)."""
        state = self.state
        offset = event.get_content_offset(self)
        if offset is None:
            return
        line = self._first_line() + offset.y
        if state is not None and 0 <= line < len(state.events):
            self.post_message(JumpToStep(state.events[line].step + 1))

    def _styles(self) -> dict[str, Style]:
        """Component styles, looked up once per theme (render_line runs for every visible line)."""
        key = self.app.theme
        if self._style_cache is None or self._style_cache[0] != key:
            styles = self.styles_for(*self.COMPONENT_CLASSES)
            styles["now"] = Style(bgcolor=styles["now"].bgcolor)
            styles["base"] = self.rich_style
            self._style_cache = (key, styles)
        return self._style_cache[1]

    def render_line(self, y: int) -> Strip:
        """Format one visible event."""
        state = self.state
        width = self.content_size.width
        index = self._first_line() + y
        if state is None or index >= len(state.events):
            return Strip.blank(width, self.rich_style)
        event = state.events[index]
        now = event.step == state.current - 1
        styles = self._styles()
        base = styles["base"]
        overlay = styles["now"] if now else Style()
        kind_style = styles[KIND_STYLE.get(event.kind, "instr")] + overlay
        step_style = styles["step"] + overlay
        text = event.describe()
        segments = [Segment(f"{'▶' if now else ' '}{event.step:>7} ", step_style), Segment(text, kind_style)]
        strip = Strip(segments).crop_extend(0, width, base + overlay)
        return strip
