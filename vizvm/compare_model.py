"""The compare screen's model: one guest in several modes, side by side on one shared step cursor.

Each mode drives its own system through a TimeMachine, so moving the cursor forward or back moves
every mode exactly. When the session opens, a survey runs each mode to its end (as `vizvm compare`
does): its total steps and cycles, the first fidelity violation (trap-and-emulate's point of
divergence: a sensitive instruction that did not trap) and whether what the guest finally sees
matches native. No Textual import here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.events import (
    BtTranslated,
    Emulated,
    FidelityViolation,
    HypercallMade,
    InstructionExecuted,
    Reflected,
    TrapReturn,
    TrapTaken,
    VmExit,
)
from engine.systems import System, guest_view
from engine.timetravel import TimeMachine
from engine.vmm import MODE_TITLES, MODES
from vizvm.vmm_view import guest_ring, short_reason

SURVEY_LIMIT = 500_000
"""Steps each mode may run in the opening survey (the longest shipped workload, heap, needs about 270,000;
an endless guest stops here, in about a second for all five modes)."""
SURVEY_CHUNK = 2_000
CHECKPOINTS = 1_000
RECENT = 16
"""Steps each column lists up to the cursor."""


@dataclass(frozen=True)
class Survey:
    """One mode run to its end."""

    mode: str
    steps: int
    cycles: int
    halted: bool
    first_fidelity: FidelityViolation | None
    divergence: str | None
    """How what the guest finally sees differs from native (None: equivalent)."""


@dataclass(frozen=True)
class ModeColumn:
    """One mode at the shared cursor."""

    mode: str
    steps: int
    halted: bool
    pc: int
    guest_ring: int
    real_ring: int
    recent: tuple[tuple[int, tuple[str, ...]], ...]
    """The last few steps up to the cursor, oldest first: (step, its instruction then the VMM's work)."""
    counters: dict[str, int] = field(default_factory=dict)
    survey: Survey | None = None

    @property
    def title(self) -> str:
        """The mode's full name."""
        return MODE_TITLES[self.mode]

    @property
    def diverged(self) -> bool:
        """True once the cursor is at or past this mode's first fidelity violation."""
        first = self.survey.first_fidelity if self.survey else None
        return first is not None and self.steps > first.step

    def figure(self, name: str) -> int:
        """A counter, with the derived figures `vizvm compare` shows."""
        c = self.counters
        if name == "guest instructions":
            return c.get("instructions", 0) + c.get("trapped_instructions", 0)
        if name == "exits to the VMM":
            return c.get("vmm_entries", 0)
        if name == "traps":
            return c.get("traps", 0) + c.get("reflected", 0)
        return int(c.get(name, 0))


def _first_fidelity(tm: TimeMachine, limit: int) -> FidelityViolation | None:
    """Run to the end (or `limit`), finding the first fidelity violation by replaying the chunk it fell in."""
    system: Any = tm.machine
    while not system.halted and system.steps < limit:
        start = system.steps
        before = system.counters().get("fidelity_violations", 0)
        if tm.run(min(SURVEY_CHUNK, limit - start)) == 0:
            break
        if system.counters().get("fidelity_violations", 0) != before:
            tm.go_to(start)
            while not system.halted:
                for event in tm.step().events:
                    if isinstance(event, FidelityViolation):
                        return event
    return None


def survey(make: Callable[[str], System], modes: Sequence[str], limit: int = SURVEY_LIMIT) -> dict[str, Survey]:
    """Run every mode to its end: steps, cycles, first fidelity violation, equivalence with native."""
    results: dict[str, Survey] = {}
    reference = None
    for mode in ("native", *[m for m in modes if m != "native"]):
        tm = TimeMachine(make(mode), checkpoint_every=SURVEY_CHUNK)
        first = _first_fidelity(tm, limit) if mode != "native" else None
        system: Any = tm.machine
        tm.run(limit - system.steps)
        view = guest_view(system)
        if reference is None:
            reference = view
        divergence = reference.first_difference(view, observable_only=mode == "pv") if mode != "native" else None
        results[mode] = Survey(mode, system.steps, system.counters().get("cycles", 0), system.halted, first,
                               divergence)
    return {mode: results[mode] for mode in modes}


class CompareSession:
    """Every mode of one guest on one step cursor."""

    def __init__(self, make: Callable[[str], System], modes: Sequence[str] = MODES, *,
                 limit: int = SURVEY_LIMIT) -> None:
        self.modes = tuple(modes)
        self.limit = limit
        self.machines = {mode: TimeMachine(make(mode), checkpoint_every=CHECKPOINTS) for mode in self.modes}
        self.surveys = survey(make, self.modes, limit)
        self.cursor = 0
        self._recent: dict[str, tuple[tuple[int, tuple[str, ...]], ...]] = {mode: () for mode in self.modes}

    @property
    def end(self) -> int:
        """The last step any mode reaches."""
        return max(s.steps for s in self.surveys.values())

    def divergence(self) -> FidelityViolation | None:
        """The earliest fidelity violation of any mode (trap-and-emulate's, for a guest that has one)."""
        found = [s.first_fidelity for s in self.surveys.values() if s.first_fidelity is not None]
        return min(found, key=lambda event: event.step) if found else None

    def go_to(self, step: int) -> None:
        """Put every mode at `step` (a mode that stopped earlier stays at its end)."""
        self.cursor = max(0, min(step, self.end))
        for mode, tm in self.machines.items():
            target = min(self.cursor, self.surveys[mode].steps)
            tm.go_to(max(target - RECENT, 0))
            recent = []
            while tm.steps < target:
                result = tm.step()
                recent.append((result.step, describe_step(result.events)))
            self._recent[mode] = tuple(recent)

    def columns(self) -> list[ModeColumn]:
        """Each mode at the cursor."""
        columns = []
        for mode, tm in self.machines.items():
            system: Any = tm.machine
            columns.append(ModeColumn(mode, system.steps, system.halted, system.cpu.pc, guest_ring(system),
                                      system.cpu.ring, self._recent[mode], system.counters(), self.surveys[mode]))
        return columns


def describe_step(events: Sequence[Any]) -> tuple[str, ...]:
    """The instruction a step ran, then each thing the VMM did, one short line each."""
    lines: list[str] = []
    for event in events:
        if isinstance(event, InstructionExecuted):
            badge = {"privileged": "  PRV", "sensitive-unprivileged": "  SEN"}.get(event.klass, "")
            lines.insert(0, f"{event.text}{badge}")  # a block translated just before it still reads second
        elif isinstance(event, VmExit):
            lines.append(f"→ VMM: {short_reason(event.via, event.reason)}")
        elif isinstance(event, FidelityViolation):
            lines.append(f"✘ saw {event.real:#x}, not {event.virtual:#x}")
        elif isinstance(event, Emulated):
            lines.append(f"  {event.effect}")
        elif isinstance(event, Reflected):
            lines.append(f"  reflect {event.cause} to {event.handler:#x}")
        elif isinstance(event, HypercallMade):
            lines.append(f"  {event.name} = {event.result}")
        elif isinstance(event, BtTranslated):
            lines.append(f"  translate {event.instructions} instr ({event.callouts} callouts)")
        elif isinstance(event, TrapTaken):
            lines.append(f"trap: {event.cause} ring {event.from_ring}→{event.to_ring}")
        elif isinstance(event, TrapReturn):
            lines.append(f"iret to ring {event.to_ring}")
        elif event.kind in ("vm-stop", "halt"):
            lines.append(f"■ {getattr(event, 'reason', 'stopped')}")
    return tuple(lines)
