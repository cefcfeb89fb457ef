"""Load another program: a .s file or a shipped sample, bare metal or under the shipped kernel."""

from __future__ import annotations

from typing import cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static

from engine.machine import Machine
from vizvm.screens.dialogs import ErrorDialog


def build_machine(program: str | None, under_kernel: bool, mode: str = "native",
                  memory_mode: str = "relocation", tlb_managed: str = "hardware", vms: int = 1,
                  host_frames: int | None = None) -> tuple[Machine, str]:
    """The machine for PROGRAM as `vizvm run` means it, natively or under a VMM `mode` (raises AsmErrors,
    OSError or ValueError). The app drives a Hypervisor through the same bridge as a Machine."""
    from vizvm.cli_trace import build_machine as build
    from vizvm.viewmodel import machine_title

    machine = cast(Machine, build(program, under_kernel=under_kernel, mode=mode, memory_mode=memory_mode,
                                  tlb_managed=tlb_managed, vms=vms, host_frames=host_frames))
    return machine, machine_title(machine)


def shipped_samples() -> list[str]:
    """Names of the shipped user programs ([] if none are installed)."""
    try:
        from engine.programs import sample_names

        return sample_names()
    except (ImportError, OSError):
        return []


class LoadProgramDialog(ModalScreen[tuple[Machine, str] | None]):
    """Type a path or pick a sample; assembler errors open a readable report and the dialog stays."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        """Path input, kernel checkbox, sample list, buttons."""
        samples = shipped_samples()
        with Vertical(classes="dialog"):
            yield Label("Load a program", classes="dialog-title")
            yield Static("A path to an assembly file (.s), or the name of a shipped sample. Samples always run "
                         "as processes of the shipped kernel; a file runs bare metal unless you tick the box.",
                         classes="dialog-help")
            yield Input(placeholder="path/to/program.s or sample name", id="program")
            yield Checkbox("Run the file as a user process of the shipped kernel", id="kernel")
            if samples:
                yield Label("Shipped samples (enter or click to load):")
                yield OptionList(*samples, id="samples")
            yield Static("", id="load-problem", classes="dialog-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load", variant="primary", id="load")
                yield Button("Cancel", id="cancel")

    @on(OptionList.OptionSelected)
    def sample_chosen(self, event: OptionList.OptionSelected) -> None:
        """Load the sample that was picked."""
        self._try(str(event.option.prompt), True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#load")
    def submit(self) -> None:
        """Load what was typed."""
        value = self.query_one("#program", Input).value.strip()
        if not value:
            self.query_one("#load-problem", Static).update("Type a path or a sample name first.")
            return
        self._try(value, self.query_one("#kernel", Checkbox).value)

    def _try(self, program: str, under_kernel: bool) -> None:
        try:
            from engine.asm import AsmErrors
        except ImportError:  # pragma: no cover - the assembler ships with the engine
            AsmErrors = SyntaxError  # type: ignore[misc,assignment]  # noqa: N806
        try:
            result = build_machine(program, under_kernel)
        except AsmErrors as errors:
            self.app.push_screen(ErrorDialog(f"{program} does not assemble", str(errors),
                                             "Fix the file and load it again; the machine was not changed."))
            return
        except (OSError, ValueError) as error:
            self.query_one("#load-problem", Static).update(str(error))
            return
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Keep the current program."""
        self.dismiss(None)
