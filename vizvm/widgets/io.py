"""The I/O panel: port accesses as they happen, and what the console printed."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.viewmodel import IoState
from vizvm.widgets.panel import PanelMixin


def printable(value: int) -> str:
    """A console byte as a character in quotes, or empty."""
    char = chr(value & 0xFF)
    if char == "\n":
        return "'\\n'"
    return f"'{char}'" if char.isprintable() else ""


class IoPanel(PanelMixin, Widget, can_focus=True):
    """Console output at the top, the newest port accesses below it."""

    PANEL_NUMBER = 6
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "I/O and console"
    COMPONENT_CLASSES = {"io--heading", "io--console", "io--out", "io--in", "io--muted", "io--now"}

    state: reactive[IoState | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = self.panel_title()

    def watch_state(self, state: IoState | None) -> None:
        """Counts in the title."""
        if state is not None:
            self.set_detail(f"{state.reads} in · {state.writes} out")

    def render(self) -> RenderableType:
        """Console lines (the newest that fit) then the port log."""
        state = self.state
        if state is None:
            return Text("loading…")
        s = self.styles_for(*self.COMPONENT_CLASSES)
        height = max(self.content_size.height, 4)
        width = max(self.content_size.width, 10)
        console_rows = max(2, (height - 2) // 2)
        port_rows = height - console_rows - 2
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(f"console output{' · ' + state.whose if state.whose else ''}\n", style=s["heading"])
        lines = [line[-width:] for line in state.console.split("\n")] if state.console else []
        shown = lines[-console_rows:]
        if not shown:
            out.append("(nothing printed yet)", style=s["muted"])
        out.append("\n".join(shown), style=s["console"])
        out.append("\n" * (console_rows - max(len(shown), 1) + 1))
        out.append("port accesses (recorded steps)\n", style=s["heading"])
        ports = state.ports[-port_rows:] if port_rows > 0 else ()
        if not ports:
            out.append("(none in the recorded steps)", style=s["muted"])
        for number, event in enumerate(ports):
            style = s["out"] if event.write else s["in"]
            if event.step == state.current - 1:
                style = style + s["now"]
            direction = "out" if event.write else "in "
            arrow = "←" if event.write else "→"
            out.append(f"{event.step:>7} ", style=s["muted"])
            out.append(f"{direction} {event.port:#04x} {arrow} {event.value:#04x} ", style=style)
            out.append(f"{printable(event.value) if event.device == 'console' else ''} {event.device}",
                       style=s["muted"])
            if number < len(ports) - 1:
                out.append("\n")
        return out
