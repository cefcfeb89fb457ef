"""F1 help: every key, generated from the bindings of the screen it was opened on."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from vizvm.commands import CommandEntry

INTRO = (
    "vizvm runs a small simulated machine one instruction at a time. Step with s, run with r, and watch "
    "the panels: the code around pc, the registers (what the last step changed is highlighted), the memory "
    "mapper (how a virtual address becomes a physical one), the trap timeline (user and kernel taking "
    "turns), the event log and the console. Every command is also in the command palette (Ctrl+P)."
)


def keys_table(entries: list[CommandEntry]) -> Group:
    """One table per group: key, command and what it does."""
    tables: list[Table] = []
    table: Table | None = None
    group = None
    for entry in entries:
        if entry.group != group or table is None:
            group = entry.group
            table = Table(box=None, show_header=False, expand=True, padding=(0, 1), title=group,
                          title_justify="left", title_style="bold underline")
            table.add_column("key", no_wrap=True, style="bold", width=14)
            table.add_column("command", no_wrap=True, width=22)
            table.add_column("what it does", ratio=1)
            tables.append(table)
        table.add_row(entry.keys, entry.description, Text(entry.tooltip, style="dim"))
    return Group(*tables)


class HelpScreen(ModalScreen[None]):
    """A scrollable list of every key, by group."""

    BINDINGS = [Binding("escape,f1,q", "close", "Close help")]

    def __init__(self, entries: list[CommandEntry]) -> None:
        super().__init__()
        order: dict[str, int] = {}
        for entry in entries:
            order.setdefault(entry.group, len(order))
        self.entries = sorted(entries, key=lambda e: order[e.group])

    def compose(self) -> ComposeResult:
        """Intro, the key table, a close button."""
        with Vertical(classes="dialog help-dialog"):
            yield Label("vizvm help · keys", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(INTRO, classes="dialog-help")
                yield Static(keys_table(self.entries), id="keys")
            yield Button("Close (Esc)", variant="primary", id="close")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Back to the machine."""
        self.dismiss(None)
