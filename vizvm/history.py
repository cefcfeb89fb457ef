"""The recorded window: the last few hundred steps with every event they caused.

The engine only creates events while something records, and recording is ten times slower than
running, so the bridge runs fast and re-records a window of steps ending at the current position
whenever it stops. Everything the panels show about the past (event log, trap timeline, I/O log,
the last page walk) is read from this window. No Textual import here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.events import Emulated, Event, HypercallMade, InstructionExecuted, Reflected, TrapReturn, TrapTaken
from engine.machine import StepResult

RING_LANES: dict[int, str] = {0: "kernel", 3: "user"}
"""Lane label for each ring (a VMM adds guest kernel / VMM lanes later)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of who runs: a trap into a handler or a return from one."""

    step: int
    """The step that took the trap or executed iret."""
    kind: str
    """``trap`` or ``iret``; virtualized also ``vm-exit`` (guest to VMM) and ``vm-entry`` (VMM to guest)."""
    from_ring: int
    to_ring: int
    """Rings natively; lanes when virtualized (3 guest user, 0 guest kernel, -1 VMM: see vizvm/vmm_view.py)."""
    label: str
    """Short cause shown under the arrow (``syscall``, ``page fault``...)."""
    vector: int = -1
    detail: str = ""
    """A longer description for the selected transition ('' natively)."""


@dataclass(frozen=True, slots=True)
class RingSpan:
    """Consecutive steps run in one ring."""

    first: int
    last: int
    ring: int


SHORT_CAUSES: dict[int, str] = {
    0: "div0", 3: "brk", 6: "bad op", 13: "priv", 14: "#PF", 17: "align", 32: "timer", 33: "device",
    128: "syscall",
}


class Recording:
    """A contiguous run of recorded steps ``[lo, hi)``; ``results[i].step == lo + i``."""

    def __init__(self, start: int = 0) -> None:
        self.lo = start
        self.results: list[StepResult] = []

    @property
    def hi(self) -> int:
        """One past the last recorded step."""
        return self.lo + len(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[StepResult]:
        return iter(self.results)

    def clear(self, start: int) -> None:
        """Forget everything; the next append must be step `start`."""
        self.lo = start
        self.results = []

    def append(self, result: StepResult) -> None:
        """Add the next step (a gap restarts the window at that step)."""
        if result.step != self.hi:
            self.clear(result.step)
        self.results.append(result)

    def truncate(self, hi: int) -> None:
        """Drop steps at or after `hi`."""
        del self.results[max(hi - self.lo, 0):]

    def trim(self, keep: int) -> None:
        """Keep only the newest `keep` steps."""
        extra = len(self.results) - keep
        if extra > 0:
            del self.results[:extra]
            self.lo += extra

    def last(self) -> StepResult | None:
        """The newest step, if any."""
        return self.results[-1] if self.results else None

    def get(self, step: int) -> StepResult | None:
        """The recorded step `step`, if it is in the window."""
        index = step - self.lo
        return self.results[index] if 0 <= index < len(self.results) else None

    def events(self, kinds: frozenset[str] | None = None) -> Iterator[Event]:
        """Every event in the window, oldest first, optionally only of `kinds`."""
        for result in self.results:
            for event in result.events:
                if kinds is None or event.kind in kinds:
                    yield event

    def transitions(self) -> list[Transition]:
        """Every trap and iret in the window, oldest first."""
        found: list[Transition] = []
        for result in self.results:
            for event in result.events:
                if isinstance(event, TrapTaken):
                    label = SHORT_CAUSES.get(event.vector, f"v{event.vector}")
                    found.append(Transition(result.step, "trap", event.from_ring, event.to_ring, label,
                                            event.vector))
                elif isinstance(event, TrapReturn):
                    found.append(Transition(result.step, "iret", event.from_ring, event.to_ring, "iret"))
        return found

    def spans(self) -> list[RingSpan]:
        """Who ran at each recorded step, merged into spans."""
        spans: list[RingSpan] = []
        for result in self.results:
            ring = step_ring(result)
            if ring is None:
                continue
            if spans and spans[-1].ring == ring and spans[-1].last == result.step - 1:
                spans[-1] = RingSpan(spans[-1].first, result.step, ring)
            else:
                spans.append(RingSpan(result.step, result.step, ring))
        return spans


def step_ring(result: StepResult) -> int | None:
    """The ring a step started in (from its instruction, or the trap it delivered)."""
    for event in result.events:
        if isinstance(event, InstructionExecuted):
            return event.ring
        if isinstance(event, TrapTaken):
            return event.from_ring
    return None


def handler_depth_change(result: StepResult) -> int:
    """+1 per trap taken, -1 per iret, in this step (under a VMM: per trap reflected, per iret emulated)."""
    depth = 0
    for event in result.events:
        if isinstance(event, TrapTaken | Reflected):
            depth += 1
        elif isinstance(event, TrapReturn) or (isinstance(event, Emulated) and event.text == "iret") or (
                isinstance(event, HypercallMade) and event.name == "iret"):
            depth -= 1
    return depth
