"""Plain, immutable state for each panel, computed from the machine by the bridge.

Widgets receive these ("attributes down") and never see the engine. No Textual import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from engine.disasm import disassemble_bytes
from engine.events import (
    Event,
    NestedCacheHit,
    PageWalkRead,
    PortIO,
    ShadowUpdate,
    TlbEvict,
    TlbFill,
    TlbLookup,
    TrapTaken,
)
from engine.isa import INSTRUCTION_SIZE, NUM_GPRS, OPCODE_BY_NUMBER, SP
from engine.machine import Machine, StepResult
from engine.mmu import TlbEntry
from engine.vmm import MODE_TITLES
from vizvm.history import Recording, RingSpan, Transition
from vizvm.memview import (
    FrameMap,
    HostFrames,
    guest_base,
    guest_walk_quietly,
    memory_mode,
    page_owner,
    probe,
    shadow_walk_quietly,
    symbolize,
)
from vizvm.walkview import WalkGrid, WalkItem, is_host, walk_grid

if TYPE_CHECKING:
    from vizvm.vmm_view import VCpuState

CODE_BEFORE = 24
CODE_AFTER = 40
REGISTER_ORDER: tuple[str, ...] = tuple(f"r{i}" for i in range(NUM_GPRS)) + ("sp", "pc")
CONTROL_ORDER: tuple[str, ...] = ("cr0", "cr2", "cr3", "ksp", "idtr")


def registers(machine: Machine) -> dict[str, int]:
    """Every register the CPU panel shows, by the names StepResult.changed_registers uses."""
    cpu = machine.cpu
    values = {f"r{i}": cpu.regs[i] for i in range(NUM_GPRS)}
    values.update(sp=cpu.regs[SP], pc=cpu.pc, flags=cpu.flags, ring=cpu.ring, **cpu.control_registers)
    return values


@dataclass(frozen=True)
class CpuState:
    """Registers, flags, ring and control registers, with what changed."""

    values: dict[str, int]
    changed: frozenset[str]
    previous: dict[str, int]
    """Value of each changed register before the change."""
    cumulative: bool
    since_step: int
    """Changes are relative to this step."""
    paging: bool
    halted: bool
    counters: dict[str, int] = field(default_factory=dict)
    vcpu: VCpuState | None = None
    """The virtual CPU beside the real one when a VMM runs the guest (None natively)."""


@dataclass(frozen=True, slots=True)
class CodeLine:
    """One instruction in the code panel."""

    address: int
    text: str
    badge: str
    """``inn``, ``PRV``, ``SEN`` or '' for data / unmapped."""
    label: str | None
    source: str
    mapped: bool


@dataclass(frozen=True)
class CodeState:
    """Disassembly around pc."""

    lines: tuple[CodeLine, ...]
    pc: int
    breakpoints: frozenset[int]
    program: str
    ring: int
    paging: bool


def code_state(machine: Machine, breakpoints: frozenset[int]) -> CodeState:
    """Disassemble CODE_BEFORE instructions before pc and CODE_AFTER after it."""
    cpu = machine.cpu
    pc = cpu.pc & ~(INSTRUCTION_SIZE - 1)
    current = getattr(machine, "current", None)
    if current is not None and current.stop_reason is not None and getattr(machine, "hostmem", None) is not None:
        # An overcommitted host took the stopped VM's frames back: there is no code left to show.
        gone = CodeLine(pc, f"(vm{current.vm_id} is off: its frames are back in the host pool)", "", None, "", False)
        return CodeState((gone,), cpu.pc, breakpoints, f"vm{current.vm_id} off", cpu.ring, cpu.paging)
    start = max(pc - CODE_BEFORE * INSTRUCTION_SIZE, 0)
    lines: list[CodeLine] = []
    page_cache: dict[int, tuple[int | None, tuple[int, int] | None]] = {}
    program = ""
    memory = machine.memory
    for address in range(start, pc + CODE_AFTER * INSTRUCTION_SIZE, INSTRUCTION_SIZE):
        page = address >> 12
        if page not in page_cache:
            base = probe(machine, page << 12)
            page_cache[page] = (base, page_owner(machine, page << 12, base) if base is not None else None)
        base, owner = page_cache[page]
        if base is None or base + (address & 0xFFF) + INSTRUCTION_SIZE > len(memory):
            lines.append(CodeLine(address, "(not mapped)", "", None, "", False))
            continue
        pa = base + (address & 0xFFF)
        raw = memory[pa:pa + INSTRUCTION_SIZE]
        spec = OPCODE_BY_NUMBER.get(raw[0])
        symbol = symbolize(machine, address, owner)
        if address == pc and symbol is not None:
            program = symbol.program
        text = disassemble_bytes(raw, symbol.labels if symbol else None)
        if text.startswith(".invalid") or (symbol is not None and symbol.source.startswith(".")):
            preview = "".join(chr(b) if 32 <= b < 127 else "." for b in raw)
            lines.append(CodeLine(address, f"data {bytes(raw).hex(' ', 4)}  {preview}", "",
                                  symbol.label if symbol else None, "", True))
            continue
        lines.append(CodeLine(address, text, spec.klass.badge if spec else "",
                              symbol.label if symbol else None, symbol.source if symbol else "", True))
    return CodeState(tuple(lines), cpu.pc, breakpoints, program, cpu.ring, cpu.paging)


@dataclass(frozen=True)
class Translation:
    """One virtual-to-physical translation seen in a step.

    Natively VA -> PA. Under a VMM `va` is a gVA (or, with guest paging off, a gPA: `physical`), `gpa`
    what the guest's tables give, and `pa` the host-physical address the CPU finally uses.
    """

    step: int
    va: int
    access: str
    tlb: str
    """``hit``, ``miss`` or '' (a re-walk to set the dirty bit)."""
    walk: tuple[PageWalkRead, ...]
    """The one-dimensional walk: native, guest (relocated or nested) or shadow reads, root first."""
    pa: int | None
    """None if it faulted (or is not known)."""
    items: tuple[WalkItem, ...] = ()
    """Every walk event in order, the host dimension and nested-TLB hits included (nested paging)."""
    gpa: int | None = None
    """The guest-physical address (under a VMM, when known)."""
    physical: bool = False
    """A guest-physical access with guest paging off (nested paging translates it): `va` is a gPA."""

    @property
    def nested(self) -> bool:
        """True when the host dimension took part (a 2-D walk)."""
        return any(is_host(item) for item in self.items)


@dataclass
class _OpenTranslation:
    va: int
    access: str
    tlb: str
    pa: int | None
    items: list[WalkItem] = field(default_factory=list)
    va_known: bool = True

    def finished(self, host_next: bool) -> bool:
        """Whether the walk has ended: a fault, a one-dimensional leaf, or the final host walk.

        A host walk that ended is final when the guest leaf was read before it, or when the next event
        starts another host walk (a guest-physical access with guest paging off).
        """
        if not self.items:
            return False
        last = self.items[-1]
        if isinstance(last, PageWalkRead) and last.outcome in ("not-present", "protection"):
            return True
        if not is_host(last):
            return isinstance(last, PageWalkRead) and last.outcome == "leaf" and not any(map(is_host, self.items))
        if not (isinstance(last, NestedCacheHit) or last.outcome == "leaf"):
            return False
        guest = [i for i in self.items if isinstance(i, PageWalkRead) and not is_host(i)]
        return host_next or bool(guest and guest[-1].outcome == "leaf")

    def close(self, step: int) -> Translation:
        walk = tuple(i for i in self.items if isinstance(i, PageWalkRead) and i.dimension != "host")
        pa, gpa = self.pa, None
        nested = any(map(is_host, self.items))
        physical = nested and not walk
        if walk:
            leaf = walk[-1]
            found = (leaf.entry & 0xFFFFF000) | (leaf.va & 0xFFF) if leaf.outcome == "leaf" else None
            if leaf.dimension == "guest":
                gpa, pa = found, None
            else:
                pa = found
        if physical:
            gpa = self.va
        if nested and (gpa is not None or physical):
            last = self.items[-1]
            pa = None
            offset = (gpa if gpa is not None else self.va) & 0xFFF
            if isinstance(last, NestedCacheHit):
                pa = (last.hpa & 0xFFFFF000) | offset
            elif last.dimension == "host" and last.outcome == "leaf":
                pa = (last.entry & 0xFFFFF000) | offset
        return Translation(step, self.va, self.access, self.tlb, walk, pa, tuple(self.items), gpa, physical)


def translations(result: StepResult) -> list[Translation]:
    """Group a step's TLB lookups and walk reads (of every dimension) into translations."""
    found: list[Translation] = []
    current: _OpenTranslation | None = None
    for event in result.events:
        if isinstance(event, TlbLookup):
            if current is not None:
                found.append(current.close(result.step))
            pa = (event.frame << 12) | (event.va & 0xFFF) if event.hit else None
            current = _OpenTranslation(event.va, event.access, "hit" if event.hit else "miss", pa)
        elif isinstance(event, PageWalkRead | NestedCacheHit):
            if is_host(event):
                starts = isinstance(event, NestedCacheHit) or event.level == 1
                new = current is None or (starts and current.finished(True))
            else:
                assert isinstance(event, PageWalkRead)
                new = current is None or current.finished(False) or (current.va_known and current.va != event.va) or (
                    event.level == 1 and any(not is_host(i) for i in current.items))
            if new:
                if current is not None:
                    found.append(current.close(result.step))
                gpa = event.gpa if isinstance(event, NestedCacheHit) else event.va
                current = _OpenTranslation(gpa, getattr(event, "access", "read"), "", None,
                                           va_known=not is_host(event))
            assert current is not None
            if not current.va_known and isinstance(event, PageWalkRead) and not is_host(event):
                current.va, current.access, current.va_known = event.va, event.access, True
            current.items.append(event)
    if current is not None:
        found.append(current.close(result.step))
    return found


@dataclass(frozen=True)
class TlbRow:
    """A TLB entry and whether the current step hit or filled it."""

    entry: TlbEntry
    mark: str
    """``hit``, ``fill`` or ''."""
    vm: int | None = None
    """The VM the entry belongs to under a VMM (None natively)."""
    physical: bool = False
    """A guest-physical page (nested paging with guest paging off), not a gVA page."""


@dataclass(frozen=True, slots=True)
class ShadowRow:
    """One level of a shadow-paging walk: the guest's entry beside the shadow entry built from it."""

    level: int
    guest_address: int | None
    """gPA of the guest's entry (None when the guest's walk stopped above this level)."""
    guest_entry: int | None
    shadow_address: int | None
    """hPA of the shadow entry (None when the shadow walk stopped above this level)."""
    shadow_entry: int | None
    action: str
    """``fill`` or ``resync`` when this step's trap changed this shadow entry, else ''."""


@dataclass(frozen=True)
class ShadowView:
    """Shadow paging for the shown gVA: the guest's table (gVA -> gPA) beside the shadow (gVA -> hPA)."""

    va: int
    rows: tuple[ShadowRow, ...]
    gpa: int | None
    """What the guest's own tables give (None if the guest does not map it)."""
    hpa: int | None
    """What the shadow gives now (None while the shadow has no entry: the next access faults)."""
    updates: tuple[ShadowUpdate, ...]
    """What the VMM did to the shadow tables in this step (fill, resync, switch)."""


@dataclass(frozen=True)
class SubStepState:
    """A sub-step in progress: the instruction ran, its walk references are shown one at a time."""

    step: int
    """The step number of the instruction (the status line's step S)."""
    revealed: int
    """References shown so far (k, 1-based)."""
    total: int
    """References the instruction read (N)."""


@dataclass(frozen=True)
class MapperState:
    """Everything the memory mapper draws."""

    paging: bool
    level_bits: tuple[int, ...]
    root: int
    focus: Translation | None
    """The most interesting translation of the current step."""
    last_walk: Translation | None
    """The most recent walk in the recorded window (may be `focus`)."""
    step_translations: int
    tlb: tuple[TlbRow, ...]
    tlb_capacity: int
    tlb_policy: str
    evicted: tuple[TlbEvict, ...]
    frames: FrameMap | None
    page_fault: TrapTaken | None
    mode: str = "native"
    """``native``, or under a VMM how it virtualizes memory: ``relocation``, ``shadow`` or ``nested``."""
    vm: int | None = None
    """The running VM's id under a VMM."""
    host_levels: int = 0
    """Levels of the host's tables (nested paging)."""
    grid: WalkGrid | None = None
    """`last_walk` as the 2-D grid (nested paging)."""
    shadow: ShadowView | None = None
    """`last_walk` beside the guest's own entries (shadow paging)."""
    host: HostFrames | None = None
    """The host frame map by owner (under a VMM)."""
    vm_base: int = 0
    """Where the running VM's memory starts in host memory (relocation)."""
    tlb_tag: str = ""
    """How TLB entries are tagged with their VM: ``vpid`` (engine TLB keys), or ``flush`` (one VM's at a time)."""
    substep: SubStepState | None = None


def reveal_prefix(events: tuple[Event, ...], revealed: int) -> tuple[Event, ...]:
    """The events of a step up to and including its `revealed`-th walk reference (a sub-step's view)."""
    seen = 0
    for index, event in enumerate(events):
        if isinstance(event, PageWalkRead):
            seen += 1
            if seen == revealed:
                return events[:index + 1]
    return events


def mapper_state(machine: Machine, recording: Recording, frames: FrameMap | None,
                 substep: SubStepState | None = None, host: HostFrames | None = None) -> MapperState:
    """The translation to show, the TLB with this step's hit/fill marked, and the frame map.

    During a sub-step only the instruction's first `revealed` walk references are shown.
    """
    last = recording.last()
    if last is not None and substep is not None and last.step == substep.step == machine.steps - 1:
        last = replace(last, events=reveal_prefix(last.events, substep.revealed))
    else:
        substep = None
    current = translations(last) if last is not None and last.step == machine.steps - 1 else []
    focus = next((t for t in reversed(current) if t.items), None)
    if substep is not None:  # the translation holding the newest revealed reference
        focus = next((t for t in reversed(current) if t.items), focus)
    focus = focus or next((t for t in reversed(current) if t.access != "fetch"), None)
    focus = focus or (current[-1] if current else None)
    last_walk = focus if focus is not None and focus.items else None
    if last_walk is None:
        for result in reversed(recording.results[-400:]):
            walked = [t for t in translations(result) if t.items]
            if walked:
                last_walk = walked[-1]
                break
    marks: dict[tuple[int, int], str] = {}
    evicted: list[TlbEvict] = []
    fault: TrapTaken | None = None
    updates: list[ShadowUpdate] = []
    for event in last.events if last is not None and current else ():
        if isinstance(event, TlbLookup) and event.hit:
            marks[(event.vpn, event.asid)] = "hit"
        elif isinstance(event, TlbFill):
            marks[(event.vpn, event.asid)] = "fill"
        elif isinstance(event, TlbEvict):
            evicted.append(event)
        elif isinstance(event, TrapTaken) and event.vector == 14:
            fault = event
        elif isinstance(event, ShadowUpdate):
            updates.append(event)
    mmu = machine.mmu
    mode = memory_mode(machine)
    current_vm = getattr(machine, "current", None)
    vm_id = int(current_vm.vm_id) if current_vm is not None else None
    tagged = bool(getattr(mmu, "vpid_tagging", False))  # the engine tags TLB entries with their VM (VPID)
    rows = tuple(_tlb_row(entry, marks, vm_id, tagged) for entry in mmu.entries())
    host_levels = int(current_vm.nested.levels) if current_vm is not None and current_vm.nested is not None else 0
    grid = None
    if last_walk is not None and last_walk.nested:
        grid = walk_grid(last_walk.items, len(mmu.level_bits) if not last_walk.physical else 0, host_levels)
    shadow = None
    if mode == "shadow" and machine.cpu.paging:
        va = last_walk.va if last_walk is not None else focus.va if focus is not None else None
        if va is not None:
            shadow = shadow_view(machine, va, tuple(updates))
    tag = "" if vm_id is None else "vpid" if tagged else "flush"
    return MapperState(machine.cpu.paging, tuple(mmu.level_bits), mmu.root, focus, last_walk, len(current),
                       rows, mmu.tlb_capacity, mmu.tlb_policy, tuple(evicted), frames, fault, mode, vm_id,
                       host_levels, grid, shadow, host, guest_base(machine), tag, substep)


def _tlb_row(entry: TlbEntry, marks: dict[tuple[int, int], str], vm_id: int | None, tagged: bool) -> TlbRow:
    """A TLB row with its VM tag: the entry's own (VPID) if the engine tags entries, else the running VM."""
    physical = bool(getattr(entry, "physical", False))  # nested paging's guest-physical (paging off) entries
    tag = getattr(entry, "vpid", None)
    vm = int(tag) if tagged and tag is not None and vm_id is not None else vm_id
    return TlbRow(entry, marks.get((entry.vpn, entry.asid), ""), vm, physical)


def shadow_view(machine: Machine, va: int, updates: tuple[ShadowUpdate, ...]) -> ShadowView:
    """The guest's entries for `va` beside the shadow's, with the entries this step's trap changed."""
    gpa, guest = guest_walk_quietly(machine, va)
    shadow = shadow_walk_quietly(machine, va)
    changed = {u.shadow_address: u.action for u in updates if u.action in ("fill", "resync")}
    rows = []
    for level in range(1, len(machine.mmu.level_bits) + 1):
        g = guest[level - 1] if level <= len(guest) else (None, None)
        h = shadow[level - 1] if level <= len(shadow) else (None, None)
        rows.append(ShadowRow(level, g[0], g[1], h[0], h[1], changed.get(h[0], "") if h[0] is not None else ""))
    hpa = None
    if len(shadow) == len(machine.mmu.level_bits) and shadow[-1][1] & 1:
        hpa = (shadow[-1][1] & 0xFFFFF000) | (va & 0xFFF)
    return ShadowView(va, tuple(rows), gpa, hpa, updates)


@dataclass(frozen=True)
class TimelineState:
    """Who ran when, and every trap and return, over the recorded window."""

    spans: tuple[RingSpan, ...]
    transitions: tuple[Transition, ...]
    lo: int
    hi: int
    current: int
    ring: int
    lanes: dict[int, str] = field(default_factory=dict)
    """Lane labels by ring (or by world lane when virtualized), top lane first when sorted descending."""


@dataclass(frozen=True)
class IoState:
    """Port accesses in the window and the console output so far."""

    ports: tuple[PortIO, ...]
    console: str
    reads: int
    writes: int
    current: int
    whose: str = ""
    """Whose console it is when a host runs several VMs (the running one: `vm1`), else empty."""


@dataclass(frozen=True)
class EventLogState:
    """The recorded window's events for the event log."""

    events: tuple[Event, ...]
    lo: int
    hi: int
    current: int
    kinds: frozenset[str] | None
    """Kinds shown; None means all."""


@dataclass(frozen=True)
class StatusState:
    """The status line: where the machine is and what it is doing."""

    title: str
    step: int
    furthest: int
    running: bool
    goal: str
    speed: int
    halted: bool
    halt_reason: str | None
    exit_code: int
    breakpoints: int
    engine_rate: float
    recorded: tuple[int, int]
    last_stop: str = ""
    """Why the last run stopped ('' while running or before any run)."""
    substep: SubStepState | None = None
    """The walk reference a sub-step shows (None when not sub-stepping)."""


def machine_title(machine: Machine) -> str:
    """A short description of what is loaded (``kernel + hello, count``)."""
    names = [_short(p.name) for p in machine.programs]
    mode = getattr(machine, "mode", "native")  # a Hypervisor: say which VMM mode runs the guest
    under = "" if mode == "native" else f" · {MODE_TITLES.get(mode, mode)}"
    if not names:
        return "empty machine"
    if len(names) == 1:
        return f"{names[0]} (bare metal){under}"
    vms = getattr(machine, "vms", ())
    if len(vms) > 1:  # several VMs: what each runs
        hostmem = getattr(machine, "hostmem", None)
        pool = f" · overcommit: {hostmem.config.host_frames} frames" if hostmem is not None else ""
        guests = {" + ".join(_short(p.name) for p in (g.kernel, *g.modules)) for g in machine.guests}  # type: ignore[attr-defined]
        what = f"{guests.pop()} each" if len(guests) == 1 else "different guests"
        return f"{len(vms)} VMs: {what}{under}{pool}"
    return f"{names[0]} + {', '.join(names[1:])}{under}"


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1].removesuffix(".s")
