"""Messages that cross widgets: the bridge reports up, widgets send intents up."""

from __future__ import annotations

from textual.message import Message


class MachineChanged(Message):
    """The machine moved (step, jump, run tick, load); the screen pushes new state down."""

    def __init__(self, reason: str, live: bool = False) -> None:
        super().__init__()
        self.reason = reason
        """What moved it: ``step``, ``back``, ``goto``, ``run``, ``reset``, ``load``, ``stop``..."""
        self.live = live
        """True while running flat out (panels may skip expensive work)."""

    def can_replace(self, message: Message) -> bool:
        """A burst of changes collapses into the newest one."""
        return isinstance(message, MachineChanged)


class RunStateChanged(Message):
    """Running started or stopped."""

    def __init__(self, running: bool, reason: str = "") -> None:
        super().__init__()
        self.running = running
        self.reason = reason
        """Why it stopped (``breakpoint at 0x...``, ``trap: system call``...), '' when started."""


class JumpToStep(Message):
    """A widget asks to put the machine at `step` (timeline entry, scrubber click, log line)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class BreakpointToggled(Message):
    """The code panel asks to toggle the breakpoint at a virtual address."""

    def __init__(self, address: int) -> None:
        super().__init__()
        self.address = address
