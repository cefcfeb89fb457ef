"""The status line at the top of the machine screen."""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.viewmodel import StatusState


def speed_text(speed: int) -> str:
    """``max`` or ``1,000 steps/s``."""
    return "max" if speed == 0 else f"{speed:,}/s"


class StatusLine(Widget):
    """Program, step, run state, speed and breakpoints, on one line."""

    COMPONENT_CLASSES = {"status--title", "status--running", "status--paused", "status--halted",
                         "status--muted"}

    state: reactive[StatusState | None] = reactive(None)

    def render(self) -> RenderableType:
        """One line of text."""
        state = self.state
        if state is None:
            return Text(" vizvm")

        def style(name: str) -> Style:
            return self.get_component_rich_style(f"status--{name}", partial=False)

        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(" vizvm ", style=style("title"))
        out.append(f" {state.title} ")
        out.append("│", style=style("muted"))
        if state.halted:
            out.append(f" ■ halted: {state.halt_reason} (exit {state.exit_code}) ",
                       style=style("halted"))
        elif state.running:
            rate = f" · {state.engine_rate:,.0f} steps/s" if state.engine_rate else ""
            out.append(f" ▶ running: {state.goal}{rate} ", style=style("running"))
        elif state.substep is not None:
            sub = state.substep
            out.append(f" ‖ sub-step: reference {sub.revealed} of {sub.total}, step {sub.step} ",
                       style=style("paused"))
        else:
            stop = f": {state.last_stop}" if state.last_stop else ""
            out.append(f" ‖ paused{stop} ", style=style("paused"))
        out.append("│", style=style("muted"))
        out.append(f" speed {speed_text(state.speed)} ")
        out.append("│", style=style("muted"))
        count = state.breakpoints
        out.append(f" {count} breakpoint{'s' if count != 1 else ''} ")
        out.append("│", style=style("muted"))
        out.append(" F1 help · Ctrl+P commands", style=style("muted"))
        return out
