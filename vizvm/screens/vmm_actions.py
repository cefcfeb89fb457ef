"""The machine screen's virtualization commands: the mode selector, the compare screen, the VMM panel.

MachineScreen keeps one thin action per command (so help and the palette list them from its bindings)
and calls these. Which panels show depends on the mode: the VMM panel only when virtualized, and in
the compact layout it takes the memory mapper's place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.binding import Binding

from engine.machine import Machine
from vizvm.modes import mode_label, rebuild
from vizvm.viewmodel import machine_title
from vizvm.vmm_view import is_virtual, mode_of

if TYPE_CHECKING:
    from vizvm.screens.machine import MachineScreen

VMM_GROUP = Binding.Group("Virtualization")
VMM_BINDINGS = [
    Binding("v", "choose_mode", "Mode", tooltip="Run the program natively or under the VMM: trap, bt, pv or hw",
            group=VMM_GROUP, show=False),
    Binding("V", "compare_modes", "Compare modes",
            tooltip="Run the program in every mode side by side on one step cursor", group=VMM_GROUP, show=False),
    Binding("7", "toggle_panel(7)", "VMM panel",
            tooltip="Show or hide the VMM panel (translation cache, VM controls, hypercalls, fidelity)",
            group=VMM_GROUP, show=False),
]
"""Appended to MachineScreen.BINDINGS."""


def mode_hidden(system: object, hidden: frozenset[str], compact: bool) -> set[str]:
    """A layout's hidden panels for `system`: the VMM panel natively; the mapper when virtualized and compact."""
    if not is_virtual(system):
        return set(hidden) | {"vmm"}
    return (set(hidden) - {"vmm"}) | ({"mapper"} if compact else set())


def follow_mode(screen: MachineScreen) -> None:
    """Show or hide the mode's panels after another system was loaded (natively <-> virtualized)."""
    virtual = is_virtual(screen.bridge.machine)
    screen.set_class(virtual, "-virtual")
    hidden = set(screen.hidden)
    if virtual:
        hidden.discard("vmm")
    else:
        hidden.add("vmm")
    if screen.compact:
        if virtual:
            hidden.add("mapper")
        else:
            hidden.discard("mapper")
    screen.hidden = hidden
    if screen.is_mounted:
        screen._apply_layout()


def choose_mode(screen: MachineScreen) -> None:
    """Open the mode selector; the chosen mode rebuilds the system at step 0."""
    from vizvm.screens.mode import ModeDialog

    current = mode_of(screen.bridge.machine)

    def chosen(mode: str | None) -> None:
        if mode is not None and mode != current:
            switch_mode(screen, mode)

    screen.app.push_screen(ModeDialog(current), chosen)


def switch_mode(screen: MachineScreen, mode: str) -> None:
    """Run the loaded guest in `mode` from step 0 (the timeline starts again)."""
    try:
        system = rebuild(screen.bridge.machine, mode)
    except ValueError as error:  # e.g. hardware assist with a software-managed TLB
        screen.notify(str(error), title="Mode", severity="error", timeout=6)
        return
    screen.load_machine(cast(Machine, system))  # the screen drives any system through the bridge
    screen.notify(f"Running {mode_label(mode)} from step 0", title="Mode", timeout=3)


def keep_mode(previous: object, machine: Machine, title: str) -> tuple[Machine, str]:
    """A newly loaded program (built natively) rebuilt in the mode `previous` ran in, with its title."""
    mode = mode_of(previous)
    if mode == "native":
        return machine, title
    system = cast(Machine, rebuild(machine, mode))
    return system, machine_title(system)


def open_compare(screen: MachineScreen) -> None:
    """Open the compare screen on the loaded guest."""
    from vizvm.screens.compare import CompareScreen

    if screen.bridge.running:
        screen.bridge.pause("paused to compare modes")
    screen.app.push_screen(CompareScreen(screen.bridge.machine))
