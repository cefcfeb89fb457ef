"""What the app shows about virtualization: world lanes for the trap timeline and the virtual CPU.

A system is a Machine (native) or a Hypervisor (trap, bt, pv, hw). Natively the timeline has the
user and kernel lanes; virtualized it has guest user, guest kernel and VMM lanes, and every
guest-to-VMM transition (a VM exit, a BT callout, a hypercall) is drawn with its reason. The CPU
panel shows the virtual CPU (what the guest believes) beside the real one. Run goals ("next trap"
means the next exit to the VMM) and a search for the first step with a given event live here too.
No Textual import here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.events import (
    Event,
    HypercallMade,
    InstructionExecuted,
    Reflected,
    TrapReturn,
    TrapTaken,
    VmEntry,
    VmExit,
    VmStopped,
)
from engine.hypercalls import HYPERCALL_NAMES
from engine.isa import VECTOR_DESCRIPTIONS, Flag
from engine.vmm import VMM_TRAP_TABLE
from engine.worlds import WorldTracker
from vizvm.history import SHORT_CAUSES, Recording, RingSpan, Transition
from vizvm.viewmodel import TimelineState

VMM_LANE = -1
"""The lane number of the VMM (below the guest kernel: it is more privileged)."""
GUEST_LANES: dict[int, str] = {3: "guest user", 0: "guest kernel", VMM_LANE: "VMM"}
WORLD_LANES: dict[str, int] = {"user": 3, "kernel": 0, "guest user": 3, "guest kernel": 0, "vmm": VMM_LANE}
IF = int(Flag.IF)
_SHORT_BY_DESCRIPTION = {VECTOR_DESCRIPTIONS[v]: SHORT_CAUSES[v] for v in VECTOR_DESCRIPTIONS if v in SHORT_CAUSES}


def mode_of(system: Any) -> str:
    """``native`` for a Machine, else the Hypervisor's mode."""
    return str(getattr(system, "mode", "native"))


def is_virtual(system: Any) -> bool:
    """True when `system` is a Hypervisor running a guest."""
    return mode_of(system) != "native"


def guest_ring(system: Any) -> int:
    """The ring the guest believes it runs in (the real ring natively and in guest mode)."""
    if mode_of(system) in ("native", "hw"):
        return int(system.cpu.ring)
    return int(system.current.vcpu.ring)


def lane_of_ring(ring: int) -> int:
    """The lane a guest (or native) ring is drawn in: user above kernel."""
    return 3 if ring == 3 else 0


# ---------------------------------------------------------------------------------------------- timeline
def short_reason(via: str, reason: str) -> str:
    """A few characters for the arrow of a VM exit: ``system call``, ``out``, ``timer``, ``I/O 0x10``..."""
    if reason.startswith("privileged instruction "):
        return reason.removeprefix("privileged instruction ")
    if reason.startswith("translated "):
        return reason.removeprefix("translated ")
    if reason.startswith("hypercall "):
        number = reason.removeprefix("hypercall ")
        return HYPERCALL_NAMES.get(int(number), reason) if number.isdigit() else reason
    if reason.startswith("I/O instruction (port "):
        return "I/O " + reason.removeprefix("I/O instruction (port ").rstrip(")")
    if reason.startswith("exception: "):
        cause = reason.removeprefix("exception: ")
        return _SHORT_BY_DESCRIPTION.get(cause, cause)
    if reason == "system call":
        return reason
    if reason in ("timer interrupt", "device interrupt"):
        return reason.split()[0]
    return {"external interrupt": "ext. int", "control-register access": "cr access", "VMCALL": "vmcall",
            "HLT": "hlt"}.get(reason, reason)


class GuestRingTracker:
    """The guest's ring at each event. Under hardware assist the real ring is the guest's, and VM exit
    and entry events may carry a stale virtual ring (the VMM saves it only on a world switch), so the
    ring is followed from the instructions, traps and returns instead."""

    def __init__(self, mode: str) -> None:
        self.hw = mode == "hw"
        self.ring = -1

    def ring_of(self, event: Event) -> int:
        """The guest ring to draw `event` from or to (call once per event, in order)."""
        if isinstance(event, InstructionExecuted):
            self.ring = event.ring
        elif isinstance(event, TrapTaken | TrapReturn):
            self.ring = event.to_ring
        stated = getattr(event, "guest_ring", self.ring)
        return self.ring if self.hw and self.ring >= 0 else int(stated)


def full_reason(reason: str) -> str:
    """An exit reason for reading: a hypercall gets its name (``hypercall 7 io_out``)."""
    number = reason.removeprefix("hypercall ")
    if reason.startswith("hypercall ") and number.isdigit() and int(number) in HYPERCALL_NAMES:
        return f"{reason} {HYPERCALL_NAMES[int(number)]}"
    return reason


def world_transitions(recording: Recording, mode: str = "trap") -> list[Transition]:
    """Every guest->VMM exit, VMM->guest entry, and in-guest trap or return in the window, oldest first."""
    found: list[Transition] = []
    rings = GuestRingTracker(mode)
    for result in recording:
        open_exit = -1
        reflected = ""
        for event in result.events:
            ring = rings.ring_of(event)
            if isinstance(event, VmExit):
                label = short_reason(event.via, event.reason)
                found.append(Transition(result.step, "vm-exit", lane_of_ring(ring), VMM_LANE, label,
                                        detail=f"{event.via}: {event.reason} at {event.guest_pc:#x}"))
                open_exit, reflected = len(found) - 1, ""
            elif isinstance(event, Reflected):
                reflected = SHORT_CAUSES.get(event.vector, f"v{event.vector}")
            elif isinstance(event, HypercallMade) and open_exit >= 0:
                exit_ = found[open_exit]
                found[open_exit] = Transition(exit_.step, exit_.kind, exit_.from_ring, exit_.to_ring, event.name,
                                              detail=f"hypercall {event.number} {event.name}: {event.detail}")
            elif isinstance(event, VmEntry):
                label = f"reflect {reflected}" if reflected else "resume"
                detail = (f"the VMM delivers the {reflected} into the guest kernel's handler at {event.guest_pc:#x}"
                          if reflected else f"the VMM resumes the guest at {event.guest_pc:#x}")
                found.append(Transition(result.step, "vm-entry", VMM_LANE, lane_of_ring(ring), label,
                                        detail=detail))
                open_exit, reflected = -1, ""
            elif isinstance(event, VmStopped):
                found.append(Transition(result.step, "vm-exit", VMM_LANE, VMM_LANE, "VM stops",
                                        detail=f"vm{event.vm} stopped: {event.reason}"))
            elif isinstance(event, TrapTaken):  # hardware assist: the guest's own trap table, in guest mode
                short = SHORT_CAUSES.get(event.vector, event.cause)
                entry = found[-1] if found else None
                if entry is not None and entry.step == result.step and entry.kind == "vm-entry":
                    found[-1] = Transition(entry.step, entry.kind, entry.from_ring, entry.to_ring, f"inject {short}",
                                           detail=f"the VMM injects the {event.cause} into the guest")
                found.append(Transition(result.step, "trap", lane_of_ring(event.from_ring),
                                        lane_of_ring(event.to_ring), SHORT_CAUSES.get(event.vector, event.cause),
                                        event.vector, detail=f"{event.cause} delivered by the CPU in guest mode"))
            elif isinstance(event, TrapReturn):
                found.append(Transition(result.step, "iret", lane_of_ring(event.from_ring),
                                        lane_of_ring(event.to_ring), "iret", detail="iret in guest mode"))
    return found


def world_spans(mode: str, recording: Recording, ring: int) -> list[RingSpan]:
    """Which lane each recorded step started in (the WorldTracker's world of its first event), merged."""
    tracker = WorldTracker(mode, ring)
    spans: list[RingSpan] = []
    for result in recording:
        lane = None
        for event in result.events:
            world = tracker.world_of(event)
            if lane is None:
                lane = WORLD_LANES.get(world, 0)
        if lane is None:
            continue
        if spans and spans[-1].ring == lane and spans[-1].last == result.step - 1:
            spans[-1] = RingSpan(spans[-1].first, result.step, lane)
        else:
            spans.append(RingSpan(result.step, result.step, lane))
    return spans


def _first_ring(recording: Recording, fallback: int) -> int:
    """The real ring at the start of the window (from its first instruction), for the WorldTracker."""
    for result in recording:
        for event in result.events:
            ring = getattr(event, "ring", None)
            if event.kind == "instr" and isinstance(ring, int):
                return ring
    return fallback


def timeline_state(system: Any, recording: Recording) -> TimelineState:
    """The trap timeline's state: rings natively, guest user / guest kernel / VMM lanes virtualized."""
    steps = int(system.steps)
    if not is_virtual(system):
        return TimelineState(tuple(recording.spans()), tuple(recording.transitions()), recording.lo, recording.hi,
                             steps, int(system.cpu.ring))
    mode = mode_of(system)
    transitions = world_transitions(recording, mode)
    stopped = system.current.stop_reason is not None
    now = VMM_LANE if stopped else lane_of_ring(guest_ring(system))
    spans = world_spans(mode, recording, _first_ring(recording, int(system.cpu.ring)))
    return TimelineState(tuple(spans), tuple(transitions), recording.lo, recording.hi, steps, now,
                         dict(GUEST_LANES))


# ---------------------------------------------------------------------------------------------- virtual CPU
@dataclass(frozen=True, slots=True)
class VCpuRow:
    """One piece of system state: the real CPU's value and the guest's (virtual) value."""

    name: str
    real: str
    virtual: str
    why: str = ""
    """Why they differ (shown when the row is focused in a lesson or in the panel's note)."""

    @property
    def differs(self) -> bool:
        """True when the guest's view is not what the real CPU holds."""
        return self.real != self.virtual


@dataclass(frozen=True)
class VCpuState:
    """The virtual CPU beside the real one, for the CPU panel."""

    mode: str
    rows: tuple[VCpuRow, ...]
    note: str
    pending: tuple[int, ...] = ()
    """Interrupts the VMM holds back until the guest's virtual IF is set."""
    guest_memory: tuple[int, int] = (0, 0)
    """(host-physical base, size) of the VM's memory; base -1: frames from an overcommitted host's pool."""


def vcpu_state(system: Any) -> VCpuState | None:
    """Real against virtual ring, IF, control registers and trap table; None natively."""
    mode = mode_of(system)
    if mode == "native":
        return None
    cpu, vm = system.cpu, system.current
    vcpu = vm.vcpu
    memory = (-1 if getattr(system, "hostmem", None) is not None else vm.base, vm.size)  # -1: the host's pool
    real_if = "1" if cpu.flags & IF else "0"
    if mode == "hw":  # guest mode: the real registers hold the guest's own state
        same = [("ring", str(cpu.ring)), ("IF", real_if)] + [
            (name, f"{getattr(cpu, name):08x}") for name in ("cr0", "cr3", "ksp", "idtr")]
        rows = tuple(VCpuRow(name, value, value) for name, value in same)
        note = "guest mode: the CPU itself holds the guest's ring, IF and trap table; exits save them"
        return VCpuState(mode, rows, note, (), memory)
    rows = (
        VCpuRow("ring", str(cpu.ring), str(vcpu.ring),
                "the guest kernel runs deprivileged" if cpu.ring != vcpu.ring else ""),
        VCpuRow("IF", real_if, "1" if vcpu.vif else "0",
                "the VMM keeps real interrupts on" if (cpu.flags & IF) != (IF if vcpu.vif else 0) else ""),
        VCpuRow("cr0", f"{cpu.cr0:08x}", f"{vcpu.cr0:08x}"),
        VCpuRow("cr3", f"{cpu.cr3:08x}", f"{vcpu.cr3:08x}"),
        VCpuRow("ksp", f"{cpu.ksp:08x}", f"{vcpu.ksp:08x}", "traps enter the VMM's stack"),
        VCpuRow("idtr", f"{cpu.idtr:08x}", f"{vcpu.idtr:08x}",
                "traps go to the VMM's table" if cpu.idtr == VMM_TRAP_TABLE else ""),
    )
    note = {"trap": "privileged instructions trap and are emulated on the virtual CPU",
            "bt": "translated code calls the VMM for privileged and sensitive instructions",
            "pv": "the guest asks the hypervisor by hypercall"}[mode]
    return VCpuState(mode, rows, note, tuple(sorted(vcpu.pending)), memory)


# ---------------------------------------------------------------------------------------------- run goals
def vmm_probe(system: Any, goal: str) -> Callable[[], int] | None:
    """A cheap number that changes when a run toward `goal` may have reached it, under a VMM.

    ``trap``: any exit to the VMM (each trapped instruction, callout, hypercall or VM exit) or a trap the
    CPU delivers in guest mode; ``page-fault``: the guest's page-fault address register changes (the
    VMM sets it when it reflects a fault) or the CPU delivers one in guest mode.
    """
    cpu = system.cpu
    if goal == "trap":
        return lambda: sum(cpu.trap_counts.values()) + int(system.current.counters.get("vmm_entries", 0))
    if goal == "page-fault":
        return lambda: hash((cpu.trap_counts.get(14, 0), system.current.vcpu.cr2))
    return None


def vmm_goal_reached(event: Event, goal: str) -> str:
    """Why a run toward `goal` stops at `event` under a VMM ('' if it does not): ``trap`` stops at every
    exit to the VMM, ``page-fault`` at a page fault the VMM reflects into the guest kernel."""
    if isinstance(event, VmExit) and goal == "trap":
        return f"exit to the VMM ({event.via}): {event.reason} at {event.guest_pc:#010x}"
    if isinstance(event, Reflected) and goal == "page-fault" and event.vector == 14:
        return f"page fault reflected into the guest kernel's handler {event.handler:#010x}"
    return ""


def first_step(system: Any, matches: Callable[[Event], bool], counter: str, *, limit: int = 2_000_000,
               chunk: int = 1_000) -> int | None:
    """The first step of a fresh copy of `system` with an event that `matches` (None if none before `limit`).

    Runs fast in chunks and replays, recorded, only a chunk in which the VM's `counter` moved.
    """
    from engine.timetravel import TimeMachine
    from vizvm.modes import rebuild

    copy: Any = rebuild(system, mode_of(system))
    tm = TimeMachine(copy, checkpoint_every=chunk)

    def count() -> int:
        counters = copy.counters()
        return int(counters.get(counter, 0))

    while not copy.halted and copy.steps < limit:
        start, before = copy.steps, count()
        if tm.run(min(chunk, limit - start)) == 0:
            break
        if count() == before:
            continue
        tm.go_to(start)
        while copy.steps < start + chunk and not copy.halted:
            result = tm.step()
            if any(matches(event) for event in result.events):
                return result.step
    return None
