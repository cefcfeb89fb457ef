"""The mode selector: run the loaded program natively or under the VMM in one of its four modes."""

from __future__ import annotations

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option

from engine.vmm import MODES
from vizvm.modes import MODE_HELP, mode_label


class ModeDialog(ModalScreen[str | None]):
    """Pick a mode (enter or click); the current one is marked. Returns the mode, or None to keep it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        """Title, help, one option per mode, a cancel button."""
        with Vertical(classes="dialog mode-dialog"):
            yield Label("Run this program…", classes="dialog-title")
            yield Static("The program restarts at step 0 in the chosen mode (the timeline starts again). The same "
                         "guest runs every way: watch the trap timeline's VMM lane, the CPU panel's virtual CPU and "
                         "the VMM panel (7).", classes="dialog-help")
            options = [Option(self._row(mode), id=mode) for mode in MODES]
            yield OptionList(*options, id="modes")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")

    def _row(self, mode: str) -> Table:
        """The mode's name beside its one-line description (which wraps in its own column)."""
        row = Table.grid(padding=(0, 1), expand=True)
        row.add_column(width=1)
        row.add_column(width=25, style="bold")
        row.add_column(ratio=1)
        row.add_row("●" if mode == self.current else " ", mode_label(mode), MODE_HELP[mode])
        return row

    def on_mount(self) -> None:
        """Start on the current mode."""
        modes = self.query_one("#modes", OptionList)
        modes.highlighted = MODES.index(self.current) if self.current in MODES else 0
        modes.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        """Return the picked mode."""
        self.dismiss(event.option.id)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Keep the current mode."""
        self.dismiss(None)
