"""The VMM panel's state: what the current mode's VMM has (translation cache, VM controls, hypercalls,
fidelity violations), its exits by reason and the last exit with its qualification. No Textual import.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from engine.events import (
    BtBlockEntered,
    BtInvalidated,
    BtTranslated,
    Emulated,
    FidelityViolation,
    HypercallMade,
    Reflected,
    TrapTaken,
    VmExit,
    VmStopped,
)
from engine.isa import VECTOR_DESCRIPTIONS
from vizvm.history import Recording
from vizvm.vmm_view import GuestRingTracker, full_reason, mode_of

MAX_OTHER_BLOCKS = 40
"""Translated blocks listed besides the current one (newest first)."""


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """One guest-to-VMM transition with what the VMM did about it."""

    step: int
    via: str
    """``trap``, ``callout``, ``hypercall`` or ``vm-exit``."""
    reason: str
    guest_pc: int
    guest_ring: int
    qualification: str
    """What the VMM found and did (the emulated effect, the hypercall's result, the reflected trap)."""


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """One block in the translation cache."""

    guest_pc: int
    listing: tuple[str, ...]
    callouts: int
    hits: int
    """Times the block was entered in the recorded steps."""
    mark: str = ""
    """``translated`` or ``entered`` by the newest step that touched the cache, else ''."""
    mark_step: int = -1


@dataclass(frozen=True)
class VmmState:
    """Everything the VMM panel draws for one system."""

    mode: str
    counters: dict[str, int]
    current: int
    window: tuple[int, int]
    stopped: str | None = None
    last_exit: ExitInfo | None = None
    reasons: tuple[tuple[str, int], ...] = ()
    """Exits by reason in the recorded steps, most frequent first."""
    exit_controls: tuple[str, ...] = ()
    exception_bitmap: tuple[str, ...] = ()
    blocks: tuple[BlockInfo, ...] = ()
    """The block just translated or entered first, then the newest translations."""
    block_count: int = 0
    invalidations: tuple[BtInvalidated, ...] = ()
    hypercalls: tuple[tuple[str, int], ...] = ()
    last_hypercall: HypercallMade | None = None
    fidelity: tuple[FidelityViolation, ...] = ()


def _qualify(events: list[Any]) -> str:
    """What followed an exit in its step, as one line."""
    parts: list[str] = []
    for event in events:
        if isinstance(event, Emulated):
            parts.append(event.effect)
        elif isinstance(event, HypercallMade):
            args = ", ".join(f"{a:#x}" for a in event.args)
            parts.append(f"{event.name}({args}) = {event.result}: {event.detail}")
        elif isinstance(event, Reflected):
            parts.append(f"{event.cause} reflected into the guest handler {event.handler:#x}")
        elif isinstance(event, TrapTaken):
            where = f" at {event.fault_address:#x}" if event.vector == 14 else ""
            parts.append(f"{event.cause}{where} delivered to the guest's handler {event.handler:#x}")
        elif isinstance(event, VmStopped):
            parts.append(f"VM stopped: {event.reason}")
        elif isinstance(event, VmExit):
            break
    return "; ".join(parts)


def _exits(recording: Recording, mode: str) -> tuple[ExitInfo | None, Counter[str]]:
    last: ExitInfo | None = None
    reasons: Counter[str] = Counter()
    rings = GuestRingTracker(mode)
    for result in recording:
        events = result.events
        for index, event in enumerate(events):
            ring = rings.ring_of(event)
            if isinstance(event, VmExit):
                reason = full_reason(event.reason)
                reasons[reason] += 1
                last = ExitInfo(result.step, event.via, reason, event.guest_pc, ring,
                                _qualify(list(events[index + 1:])))
    return last, reasons


def _blocks(system: Any, recording: Recording) -> tuple[tuple[BlockInfo, ...], int]:
    cache = system.current.bt
    if cache is None:
        return (), 0
    hits: Counter[int] = Counter()
    focus_pc, mark, mark_step = -1, "", -1
    for result in recording:
        for event in result.events:
            if isinstance(event, BtBlockEntered):
                hits[event.guest_pc] += 1
                fresh = mark == "translated" and mark_step == result.step and focus_pc == event.guest_pc
                mark = "translated and entered" if fresh else "entered"
                focus_pc, mark_step = event.guest_pc, result.step
            elif isinstance(event, BtTranslated):
                focus_pc, mark, mark_step = event.guest_pc, "translated", result.step
    by_pc = {block.guest_pc: block for block in cache.blocks.values()}
    blocks: list[BlockInfo] = []
    focus = by_pc.get(focus_pc)
    if focus is not None:
        blocks.append(BlockInfo(focus.guest_pc, focus.listing, focus.callouts, hits[focus.guest_pc], mark, mark_step))
    for start in reversed(cache.order):
        block = cache.blocks.get(start)
        if block is None or block is focus:
            continue
        blocks.append(BlockInfo(block.guest_pc, block.listing, block.callouts, hits[block.guest_pc]))
        if len(blocks) > MAX_OTHER_BLOCKS:
            break
    return tuple(blocks), len(cache.blocks)


def _step_events(recording: Recording, kind: type[Any]) -> list[Any]:
    return [event for result in recording for event in result.events if isinstance(event, kind)]


def vmm_state(system: Any, recording: Recording) -> VmmState:
    """The VMM panel's state for `system` over the recorded window (a near-empty state natively)."""
    mode = mode_of(system)
    steps = int(system.steps)
    window = (recording.lo, recording.hi)
    if mode == "native":
        return VmmState(mode, {}, steps, window)
    vm = system.current
    last_exit, reasons = _exits(recording, mode)
    state: dict[str, Any] = {
        "stopped": vm.stop_reason, "last_exit": last_exit, "reasons": tuple(reasons.most_common()),
    }
    if mode == "hw":
        state["exit_controls"] = tuple(sorted(system.hw_exits))
        state["exception_bitmap"] = tuple(f"{VECTOR_DESCRIPTIONS.get(v, str(v))} ({v})"
                                          for v in sorted(system.exception_bitmap))
    elif mode == "bt":
        state["blocks"], state["block_count"] = _blocks(system, recording)
        state["invalidations"] = tuple(_step_events(recording, BtInvalidated))
    elif mode == "pv":
        calls = _step_events(recording, HypercallMade)
        state["hypercalls"] = tuple(Counter(call.name for call in calls).most_common())
        state["last_hypercall"] = calls[-1] if calls else None
    state["fidelity"] = tuple(_step_events(recording, FidelityViolation))
    return VmmState(mode, dict(vm.counters), steps, window, **state)
