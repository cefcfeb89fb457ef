"""Plain, immutable state for each panel, computed from the machine by the bridge.

Widgets receive these ("attributes down") and never see the engine. No Textual import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.disasm import disassemble_bytes
from engine.events import Event, PageWalkRead, PortIO, TlbEvict, TlbFill, TlbLookup, TrapTaken
from engine.isa import INSTRUCTION_SIZE, NUM_GPRS, OPCODE_BY_NUMBER, SP
from engine.machine import Machine, StepResult
from engine.mmu import TlbEntry
from engine.vmm import MODE_TITLES
from vizvm.history import Recording, RingSpan, Transition
from vizvm.memview import FrameMap, page_owner, probe, symbolize

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
    """One virtual-to-physical translation seen in a step."""

    step: int
    va: int
    access: str
    tlb: str
    """``hit``, ``miss`` or '' (a re-walk to set the dirty bit)."""
    walk: tuple[PageWalkRead, ...]
    pa: int | None
    """None if it faulted."""


@dataclass
class _OpenTranslation:
    va: int
    access: str
    tlb: str
    pa: int | None
    walk: list[PageWalkRead] = field(default_factory=list)

    def close(self, step: int) -> Translation:
        pa = self.pa
        if self.walk:
            leaf = self.walk[-1]
            pa = (leaf.entry & 0xFFFFF000) | (leaf.va & 0xFFF) if leaf.outcome == "leaf" else None
        return Translation(step, self.va, self.access, self.tlb, tuple(self.walk), pa)


def translations(result: StepResult) -> list[Translation]:
    """Group a step's TLB lookups and walk reads into translations."""
    found: list[Translation] = []
    current: _OpenTranslation | None = None
    for event in result.events:
        if isinstance(event, TlbLookup):
            if current is not None:
                found.append(current.close(result.step))
            pa = (event.frame << 12) | (event.va & 0xFFF) if event.hit else None
            current = _OpenTranslation(event.va, event.access, "hit" if event.hit else "miss", pa)
        elif isinstance(event, PageWalkRead):
            if current is None or current.va != event.va or (current.walk and event.level == 1):
                if current is not None:
                    found.append(current.close(result.step))
                current = _OpenTranslation(event.va, event.access, "", None)
            current.walk.append(event)
    if current is not None:
        found.append(current.close(result.step))
    return found


@dataclass(frozen=True)
class TlbRow:
    """A TLB entry and whether the current step hit or filled it."""

    entry: TlbEntry
    mark: str
    """``hit``, ``fill`` or ''."""


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


def mapper_state(machine: Machine, recording: Recording, frames: FrameMap | None) -> MapperState:
    """The translation to show, the TLB with this step's hit/fill marked, and the frame map."""
    last = recording.last()
    current = translations(last) if last is not None and last.step == machine.steps - 1 else []
    focus = next((t for t in reversed(current) if t.walk), None)
    focus = focus or next((t for t in reversed(current) if t.access != "fetch"), None)
    focus = focus or (current[-1] if current else None)
    last_walk = focus if focus is not None and focus.walk else None
    if last_walk is None:
        for result in reversed(recording.results[-400:]):
            walked = [t for t in translations(result) if t.walk]
            if walked:
                last_walk = walked[-1]
                break
    marks: dict[tuple[int, int], str] = {}
    evicted: list[TlbEvict] = []
    fault: TrapTaken | None = None
    for event in last.events if last is not None and current else ():
        if isinstance(event, TlbLookup) and event.hit:
            marks[(event.vpn, event.asid)] = "hit"
        elif isinstance(event, TlbFill):
            marks[(event.vpn, event.asid)] = "fill"
        elif isinstance(event, TlbEvict):
            evicted.append(event)
        elif isinstance(event, TrapTaken) and event.vector == 14:
            fault = event
    mmu = machine.mmu
    rows = tuple(TlbRow(entry, marks.get((entry.vpn, entry.asid), "")) for entry in mmu.entries())
    return MapperState(machine.cpu.paging, tuple(mmu.level_bits), mmu.root, focus, last_walk, len(current),
                       rows, mmu.tlb_capacity, mmu.tlb_policy, tuple(evicted), frames, fault)


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


def machine_title(machine: Machine) -> str:
    """A short description of what is loaded (``kernel + hello, count``)."""
    names = [p.name.rsplit("/", 1)[-1].removesuffix(".s") for p in machine.programs]
    mode = getattr(machine, "mode", "native")  # a Hypervisor: say which VMM mode runs the guest
    under = "" if mode == "native" else f" · {MODE_TITLES.get(mode, mode)}"
    if not names:
        return "empty machine"
    if len(names) == 1:
        return f"{names[0]} (bare metal){under}"
    return f"{names[0]} + {', '.join(names[1:])}{under}"
