"""Frozen event records: everything the engine reports happened, one record per fact.

Events are created only while something records (a `step()` call or a recorder); `run(n)` with nobody
listening creates none. Every event has a `kind` (stable string used by filters and the JSON trace)
and the `step` (retired-instruction count when it happened).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all engine events."""

    kind: ClassVar[str] = "event"
    step: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with `step` and `kind` first (the stable trace format)."""
        data: dict[str, Any] = {"step": self.step, "kind": self.kind}
        data.update(asdict(self))
        return data

    def describe(self) -> str:
        """One human-readable line (used by the event log and the text trace)."""
        parts = [f"{f.name}={_fmt(getattr(self, f.name))}" for f in fields(self) if f.name != "step"]
        return f"{self.kind}: " + " ".join(parts)


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value > 9:
        return f"{value:#x}"
    return str(value)


@dataclass(frozen=True, slots=True)
class InstructionExecuted(Event):
    """An instruction was fetched and decoded and is about to execute (it may still fault)."""

    kind: ClassVar[str] = "instr"
    pc: int
    text: str
    ring: int
    klass: str

    def describe(self) -> str:
        return f"instr: ring {self.ring} {self.pc:#010x}  {self.text}  [{self.klass}]"


@dataclass(frozen=True, slots=True)
class TrapTaken(Event):
    """A trap, fault or interrupt was delivered through the trap table."""

    kind: ClassVar[str] = "trap"
    vector: int
    cause: str
    from_ring: int
    to_ring: int
    pc: int  # the pc of the instruction that trapped (or was interrupted)
    return_pc: int  # where IRET resumes
    handler: int
    error_code: int
    fault_address: int

    def describe(self) -> str:
        extra = f" addr={self.fault_address:#x} err={self.error_code:#x}" if self.vector == 14 else ""
        return (f"trap: {self.cause} (vector {self.vector}) ring {self.from_ring}->{self.to_ring} "
                f"at {self.pc:#x} -> handler {self.handler:#x}{extra}")


@dataclass(frozen=True, slots=True)
class TrapReturn(Event):
    """IRET restored the interrupted context."""

    kind: ClassVar[str] = "iret"
    from_ring: int
    to_ring: int
    pc: int

    def describe(self) -> str:
        return f"iret: ring {self.from_ring}->{self.to_ring} resume at {self.pc:#x}"


@dataclass(frozen=True, slots=True)
class PageWalkRead(Event):
    """One page-table entry read during a walk."""

    kind: ClassVar[str] = "walk"
    va: int
    level: int  # 1 = root level
    levels: int
    table: int  # physical address of the table
    index: int
    entry_address: int
    entry: int
    outcome: str  # "next", "leaf", "not-present", "protection"
    access: str  # "read", "write", "fetch"
    dimension: str = "native"
    """native (VA->PA), guest (gVA->gPA tables, read at hPA), host (nested gPA->hPA) or shadow (gVA->hPA)."""

    def describe(self) -> str:
        space = {"native": "va", "guest": "gVA", "host": "gPA", "shadow": "gVA"}.get(self.dimension, "va")
        where = "" if self.dimension == "native" else f"{self.dimension} "
        return (f"walk: {where}{space}={self.va:#010x} L{self.level}/{self.levels} table={self.table:#x} "
                f"index={self.index} pte@{self.entry_address:#x}={self.entry:#010x} -> {self.outcome}")


@dataclass(frozen=True, slots=True)
class PteUpdate(Event):
    """The MMU wrote accessed/dirty bits back into a page-table entry."""

    kind: ClassVar[str] = "pte-update"
    entry_address: int
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class TlbLookup(Event):
    """A TLB lookup that hit or missed."""

    kind: ClassVar[str] = "tlb"
    va: int
    vpn: int
    asid: int
    hit: bool
    frame: int  # physical frame number on a hit, -1 on a miss
    access: str

    def describe(self) -> str:
        state = f"hit -> frame {self.frame:#x}" if self.hit else "miss"
        return f"tlb: {state} vpn={self.vpn:#x} asid={self.asid} ({self.access} {self.va:#010x})"


@dataclass(frozen=True, slots=True)
class TlbFill(Event):
    """A translation was installed in the TLB."""

    kind: ClassVar[str] = "tlb-fill"
    vpn: int
    asid: int
    frame: int
    flags: int
    slot: int


@dataclass(frozen=True, slots=True)
class TlbEvict(Event):
    """A TLB entry was evicted by the replacement policy to make room."""

    kind: ClassVar[str] = "tlb-evict"
    vpn: int
    asid: int
    frame: int
    policy: str


@dataclass(frozen=True, slots=True)
class TlbFlush(Event):
    """TLB entries were invalidated (whole flush, one page, or on CR3 load)."""

    kind: ClassVar[str] = "tlb-flush"
    scope: str  # "all", "page", "cr3"
    vpn: int  # -1 unless scope == "page"
    entries: int  # how many entries were dropped


@dataclass(frozen=True, slots=True)
class MemoryAccess(Event):
    """A load or store performed by an instruction (after translation)."""

    kind: ClassVar[str] = "mem"
    va: int
    pa: int
    size: int
    value: int
    write: bool

    def describe(self) -> str:
        op = "write" if self.write else "read"
        return f"mem: {op}{self.size * 8} va={self.va:#010x} pa={self.pa:#010x} value={self.value:#x}"


@dataclass(frozen=True, slots=True)
class PortIO(Event):
    """An IN or OUT instruction reached a device."""

    kind: ClassVar[str] = "io"
    port: int
    value: int
    write: bool
    device: str

    def describe(self) -> str:
        op = "out" if self.write else "in"
        return f"io: {op} port {self.port:#x} value={self.value:#x} ({self.device})"


@dataclass(frozen=True, slots=True)
class ControlRegisterWrite(Event):
    """A control register or the trap-table base changed."""

    kind: ClassVar[str] = "cr"
    register: str
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class InterruptRaised(Event):
    """A device raised an interrupt line (delivered when IF allows)."""

    kind: ClassVar[str] = "irq"
    vector: int
    device: str


@dataclass(frozen=True, slots=True)
class MachineHalted(Event):
    """The machine stopped: HLT with interrupts off, power-off port, or an unrecoverable fault."""

    kind: ClassVar[str] = "halt"
    reason: str
    exit_code: int


# ------------------------------------------------------------------------------------------ VMM events
@dataclass(frozen=True, slots=True)
class VmExit(Event):
    """The guest left for the VMM: a trap (trap-and-emulate), a BT callout, a hypercall or a VM exit."""

    kind: ClassVar[str] = "vm-exit"
    vm: int
    via: str  # "trap", "callout", "hypercall", "vm-exit"
    reason: str
    guest_pc: int
    guest_ring: int  # the guest's own (virtual) ring

    def describe(self) -> str:
        return f"vm-exit: vm{self.vm} {self.via}: {self.reason} at {self.guest_pc:#x} (guest ring {self.guest_ring})"


@dataclass(frozen=True, slots=True)
class VmEntry(Event):
    """The VMM resumed the guest."""

    kind: ClassVar[str] = "vm-entry"
    vm: int
    guest_pc: int
    guest_ring: int

    def describe(self) -> str:
        return f"vm-entry: vm{self.vm} resume at {self.guest_pc:#x} (guest ring {self.guest_ring})"


@dataclass(frozen=True, slots=True)
class Emulated(Event):
    """The VMM emulated one guest instruction on the virtual CPU."""

    kind: ClassVar[str] = "emulate"
    vm: int
    pc: int
    text: str
    effect: str

    def describe(self) -> str:
        return f"emulate: vm{self.vm} {self.pc:#x} {self.text}: {self.effect}"


@dataclass(frozen=True, slots=True)
class Reflected(Event):
    """The VMM delivered a trap or interrupt into the guest kernel's own handler."""

    kind: ClassVar[str] = "reflect"
    vm: int
    vector: int
    cause: str
    from_ring: int
    handler: int

    def describe(self) -> str:
        return (f"reflect: vm{self.vm} {self.cause} (vector {self.vector}) into the guest handler "
                f"{self.handler:#x} from guest ring {self.from_ring}")


@dataclass(frozen=True, slots=True)
class FidelityViolation(Event):
    """A sensitive-but-unprivileged instruction ran without trapping and saw real, not virtual, state."""

    kind: ClassVar[str] = "fidelity"
    vm: int
    pc: int
    text: str
    real: int
    virtual: int
    explanation: str

    def describe(self) -> str:
        return (f"fidelity: vm{self.vm} {self.pc:#x} {self.text} saw {self.real:#x}, a real machine gives "
                f"{self.virtual:#x}: {self.explanation}")


@dataclass(frozen=True, slots=True)
class HypercallMade(Event):
    """A paravirtual guest called the hypervisor."""

    kind: ClassVar[str] = "hypercall"
    vm: int
    number: int
    name: str
    args: tuple[int, ...]
    result: int
    detail: str


@dataclass(frozen=True, slots=True)
class BtTranslated(Event):
    """Binary translation put a new block of guest-kernel code into the translation cache."""

    kind: ClassVar[str] = "bt-translate"
    vm: int
    guest_pc: int
    instructions: int
    callouts: int
    listing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BtBlockEntered(Event):
    """Translated code ran a cached block (a translation-cache hit)."""

    kind: ClassVar[str] = "bt-hit"
    vm: int
    guest_pc: int


@dataclass(frozen=True, slots=True)
class BtInvalidated(Event):
    """The guest wrote to code that had been translated: its blocks were dropped."""

    kind: ClassVar[str] = "bt-invalidate"
    vm: int
    page: int
    blocks: int


@dataclass(frozen=True, slots=True)
class VmSwitched(Event):
    """The VMM's scheduler switched the CPU from one VM to another."""

    kind: ClassVar[str] = "vm-switch"
    from_vm: int
    to_vm: int


@dataclass(frozen=True, slots=True)
class VmStopped(Event):
    """A VM stopped (powered off, halted, or killed by the VMM for a safety violation)."""

    kind: ClassVar[str] = "vm-stop"
    vm: int
    reason: str
    exit_code: int


@dataclass(frozen=True, slots=True)
class NestedCacheHit(Event):
    """The nested TLB (page-walk cache) supplied a gPA->hPA translation: no host walk needed."""

    kind: ClassVar[str] = "nested-hit"
    gpa: int
    hpa: int


@dataclass(frozen=True, slots=True)
class ShadowUpdate(Event):
    """The VMM changed a shadow page table: filled an entry, dropped stale ones, or made a new root."""

    kind: ClassVar[str] = "shadow"
    vm: int
    action: str  # "fill", "resync", "switch"
    va: int
    guest_entry: int
    shadow_entry: int
    shadow_address: int


@dataclass(frozen=True, slots=True)
class HostFrameMapped(Event):
    """The VMM backed a guest-physical page with a host frame (under overcommit, on first touch)."""

    kind: ClassVar[str] = "host-map"
    vm: int
    gpa: int
    hpa: int
    why: str  # "load", "demand", "balloon-touch"


@dataclass(frozen=True, slots=True)
class PageShared(Event):
    """The page-sharing scanner found two identical pages (hash match, then full compare) and merged them."""

    kind: ClassVar[str] = "share"
    vm: int
    gpa: int
    hpa: int  # the shared frame both now map read-only
    freed: int  # the host frame given back to the pool
    refcount: int
    zero: bool  # the shared page is all zeroes


@dataclass(frozen=True, slots=True)
class CowBreak(Event):
    """A write to a copy-on-write shared page: the writer gets a private copy (or the last sharer keeps it)."""

    kind: ClassVar[str] = "cow"
    vm: int
    gpa: int
    old_hpa: int
    new_hpa: int
    refcount: int  # sharers left on the old frame


@dataclass(frozen=True, slots=True)
class BalloonChange(Event):
    """The balloon: the VMM set a target, or the guest's driver gave a page (inflate) or took one back."""

    kind: ClassVar[str] = "balloon"
    vm: int
    action: str  # "target", "inflate", "deflate"
    gpa: int  # -1 for "target"
    size: int  # pages in the balloon afterwards
    target: int


EVENT_TYPES: tuple[type[Event], ...] = (
    InstructionExecuted, TrapTaken, TrapReturn, PageWalkRead, PteUpdate, TlbLookup, TlbFill, TlbEvict,
    TlbFlush, MemoryAccess, PortIO, ControlRegisterWrite, InterruptRaised, MachineHalted,
    VmExit, VmEntry, Emulated, Reflected, FidelityViolation, HypercallMade, BtTranslated, BtBlockEntered,
    BtInvalidated, VmSwitched, VmStopped, NestedCacheHit, ShadowUpdate, HostFrameMapped, PageShared, CowBreak,
    BalloonChange,
)
EVENT_KINDS: tuple[str, ...] = tuple(t.kind for t in EVENT_TYPES)
