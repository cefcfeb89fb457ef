"""Small modal dialogs: go to step, event-log filter, and a readable error report."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static

from engine.events import EVENT_KINDS

KIND_HELP: dict[str, str] = {
    "instr": "instructions executed", "trap": "traps and interrupts taken", "iret": "returns from traps",
    "walk": "page-table entries read", "pte-update": "accessed/dirty bits written back",
    "tlb": "TLB lookups (hit or miss)", "tlb-fill": "TLB fills", "tlb-evict": "TLB evictions",
    "tlb-flush": "TLB flushes", "mem": "loads and stores", "io": "port I/O", "cr": "control register writes",
    "irq": "interrupt lines raised", "halt": "machine halted",
    "vm-exit": "guest to VMM (trap, callout, hypercall, VM exit)", "vm-entry": "VMM resumes the guest",
    "emulate": "VMM emulated an instruction", "reflect": "VMM delivered a trap into the guest kernel",
    "fidelity": "sensitive instruction saw real state", "hypercall": "paravirtual guest called the VMM",
    "bt-translate": "block put in the translation cache", "bt-hit": "translated block entered",
    "bt-invalidate": "translated blocks dropped", "vm-switch": "VMM switched VMs", "vm-stop": "VM stopped",
    "nested-hit": "nested TLB hit",
}


class GoToStepDialog(ModalScreen[int | None]):
    """Ask for a step number."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: int, furthest: int) -> None:
        super().__init__()
        self.current = current
        self.furthest = furthest

    def compose(self) -> ComposeResult:
        """A prompt, an integer input and two buttons."""
        with Vertical(classes="dialog"):
            yield Label("Go to step", classes="dialog-title")
            yield Static(f"Now at step {self.current:,}. Steps 0 to {self.furthest:,} have been reached and "
                         "are restored at once; a later step runs there (Pause with r).", classes="dialog-help")
            yield Input(placeholder="step number", type="integer", id="step")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Go", variant="primary", id="go")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def submit(self) -> None:
        """Return the number (or nothing if empty)."""
        value = self.query_one("#step", Input).value.strip()
        self.dismiss(max(int(value), 0) if value.lstrip("-").isdigit() else None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without going anywhere."""
        self.dismiss(None)


class EventFilterDialog(ModalScreen[frozenset[str] | None]):
    """Pick the event kinds the log shows."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, kinds: frozenset[str] | None) -> None:
        super().__init__()
        self.kinds = kinds

    def compose(self) -> ComposeResult:
        """A selection list of kinds with presets."""
        with Vertical(classes="dialog"):
            yield Label("Event log: show these kinds", classes="dialog-title")
            yield SelectionList[str](
                *((f"{kind:<11} {KIND_HELP.get(kind, '')}", kind, self.kinds is None or kind in self.kinds)
                  for kind in EVENT_KINDS),
                id="kinds",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("All", id="all")
                yield Button("Traps only", id="traps")
                yield Button("Memory", id="memory")
                yield Button("Cancel", id="cancel")

    def _kinds(self) -> SelectionList[str]:
        return self.query_one("#kinds", SelectionList)

    @on(Button.Pressed, "#all")
    def select_all(self) -> None:
        """Tick every kind."""
        self._kinds().select_all()

    @on(Button.Pressed, "#traps")
    def only_traps(self) -> None:
        """Traps, returns, interrupts and halts (under a VMM also exits, entries, reflections, fidelity)."""
        self._only({"trap", "iret", "irq", "halt", "vm-exit", "vm-entry", "reflect", "fidelity", "vm-stop"})

    @on(Button.Pressed, "#memory")
    def only_memory(self) -> None:
        """Walks, TLB and memory accesses."""
        self._only({"walk", "pte-update", "tlb", "tlb-fill", "tlb-evict", "tlb-flush", "mem"})

    def _only(self, kinds: set[str]) -> None:
        selection = self._kinds()
        selection.deselect_all()
        for kind in kinds:
            selection.select(kind)

    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        """Return the ticked kinds."""
        self.dismiss(frozenset(self._kinds().selected))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Keep the current filter."""
        self.dismiss(None)


class ErrorDialog(ModalScreen[None]):
    """A titled, scrollable, monospaced report (assembler errors keep their carets aligned)."""

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, text: str, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.hint = hint

    def compose(self) -> ComposeResult:
        """Title, the report, a hint and a close button."""
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="error-body"):
                yield Static(self.text, markup=False, classes="error-text")
            if self.hint:
                yield Static(self.hint, classes="dialog-help")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        """Close the report."""
        self.dismiss(None)
