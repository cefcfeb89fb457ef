"""The code panel: disassembly around pc with labels, breakpoints and each instruction's class badge."""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from vizvm.messages import BreakpointToggled
from vizvm.viewmodel import CodeLine, CodeState
from vizvm.widgets.panel import PanelMixin

BADGE_HELP = {"inn": "innocuous", "PRV": "privileged", "SEN": "sensitive, unprivileged"}
GUTTER = 14  # clicks left of this column toggle a breakpoint


class CodePanel(PanelMixin, Widget, can_focus=True):
    """Disassembly around pc. Up/down move a cursor; enter or a click in the gutter toggles a breakpoint."""

    PANEL_NUMBER = 1
    ALLOW_MAXIMIZE = True
    PANEL_TITLE = "Code"
    COMPONENT_CLASSES = {
        "code--pc", "code--marker", "code--cursor", "code--label", "code--address", "code--breakpoint", "code--inn",
        "code--prv", "code--sen", "code--source", "code--unmapped",
    }
    BINDINGS = [
        Binding("up", "cursor(-1)", "Cursor up", show=False),
        Binding("down", "cursor(1)", "Cursor down", show=False),
        Binding("enter", "toggle_here", "Breakpoint", tooltip="Toggle a breakpoint on the cursor line"),
    ]

    state: reactive[CodeState | None] = reactive(None, layout=False)
    cursor: reactive[int | None] = reactive(None)
    """Address of the cursor line; None follows pc."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._rows: list[int] = []
        self.border_title = self.panel_title()

    def watch_state(self, state: CodeState | None) -> None:
        """Follow pc again when it moves; show which program runs."""
        if state is not None:
            where = state.program or "?"
            self.set_detail(f"{where} · ring {state.ring}")

    @property
    def cursor_address(self) -> int:
        """The address the cursor is on (pc when it follows pc)."""
        if self.cursor is not None:
            return self.cursor
        return self.state.pc if self.state is not None else 0

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by `delta` instructions."""
        if self.state is None:
            return
        addresses = [line.address for line in self.state.lines]
        here = self.cursor_address
        index = addresses.index(here) if here in addresses else 0
        index = max(0, min(len(addresses) - 1, index + delta))
        self.cursor = addresses[index] if addresses else None

    def action_toggle_here(self) -> None:
        """Ask for a breakpoint toggle on the cursor line."""
        self.post_message(BreakpointToggled(self.cursor_address))

    def follow_pc(self) -> None:
        """Drop the cursor so the view follows pc again."""
        self.cursor = None

    def on_click(self, event: events.Click) -> None:
        """Gutter click toggles a breakpoint; elsewhere moves the cursor there."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = offset.y
        if 0 <= row < len(self._rows) and self._rows[row] >= 0:
            address = self._rows[row]
            if offset.x < GUTTER:
                self.post_message(BreakpointToggled(address))
            self.cursor = address

    def render(self) -> RenderableType:
        """Lines around the cursor (or pc), pc at about a third from the top."""
        state = self.state
        if state is None:
            return Text("loading…")
        styles = self.styles_for(*self.COMPONENT_CLASSES)
        styles["pc"] = self.highlight_for("code--pc")
        styles["cursor"] = self.highlight_for("code--cursor")
        # Lay out rows first (a label is a row of its own) and build Text only for the visible ones.
        rows: list[tuple[int, CodeLine]] = []
        focus_row = 0
        focus = self.cursor_address
        for line in state.lines:
            if line.label:
                rows.append((-1, line))
            if line.address == focus:
                focus_row = len(rows)
            rows.append((line.address, line))
        height = max(self.content_size.height, 1)
        start = max(0, min(focus_row - height // 3, len(rows) - height))
        visible = rows[start:start + height]
        self._rows = [address for address, _ in visible]
        texts = [Text(f"{line.label}:", style=styles["label"]) if address < 0 else self._line(line, state, styles)
                 for address, line in visible]
        joined = Text("\n", no_wrap=True, overflow="ellipsis").join(texts)
        joined.no_wrap = True
        return joined

    def _line(self, line: CodeLine, state: CodeState, styles: dict[str, Style]) -> Text:
        is_pc = line.address == state.pc
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("●" if line.address in state.breakpoints else " ", style=styles["breakpoint"])
        text.append("▶" if is_pc else " ", style=styles["marker"])
        text.append(f" {line.address:08x}  ", style=styles["address"])
        if not line.mapped:
            text.append(line.text, style=styles["unmapped"])
        else:
            text.append(f"{line.text:<22}")
            badge = line.badge or "   "
            text.append(f" {badge}", style=styles.get(badge.lower(), Style()))
            comment = line.source.split(";", 1)[1].strip() if ";" in line.source else ""
            if comment:
                text.append(f"  ; {comment}", style=styles["source"])
        if is_pc:
            text.stylize(styles["pc"])
        if self.cursor is not None and line.address == self.cursor and self.has_focus:
            text.stylize(styles["cursor"])
        return text
