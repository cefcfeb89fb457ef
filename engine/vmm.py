"""The virtual machine monitor: runs guest kernels by trap-and-emulate, binary translation,
paravirtualization or hardware assist, on one real CPU, with each VM's state kept apart.

The VMM itself is host code (Python), as a real hypervisor is host code the guest never sees: a
guest-to-VMM transition is an event (`vm-exit`), the VMM's work is events (`emulate`, `reflect`,
`hypercall`, `bt-translate`, `fidelity`), and `vm-entry` returns to the guest. Every transition
and emulation is charged in cycles by the cost model (engine/costs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.bt import TranslationCache
from engine.costs import CostModel
from engine.disasm import format_instruction
from engine.events import (
    Emulated,
    FidelityViolation,
    HypercallMade,
    Reflected,
    VmEntry,
    VmExit,
    VmStopped,
    VmSwitched,
)
from engine.hostmem import HostMemory, OvercommitConfig
from engine.isa import (
    ARITH_FLAGS,
    CR0_PG,
    PAGE_SIZE,
    SP,
    VECTOR_DESCRIPTIONS,
    WORD_MASK,
    Flag,
    OpSpec,
    Vector,
)
from engine.machine import Machine, MachineConfig, MachineState, StepResult
from engine.mmu import READ, Fault
from engine.nested import NestedPaging, host_table_space
from engine.program import Program
from engine.shadow import ShadowPaging
from engine.soft_tlb import SoftTlbVmm, check_supported
from engine.vmm_emulate import (
    GuestTripleFault,
    VCpu,
    emulate,
    port_read,
    port_write,
    real_ring_for,
    reflect,
)

MODES = ("native", "trap", "bt", "pv", "hw")
MEMORY_MODES = ("relocation", "nested", "shadow")
SHADOW_TABLE_SPACE = 64 * PAGE_SIZE
SHADOW_HW_EXITS = frozenset({"MOVCR", "MOVRC", "INVLPG", "TLBFLUSH"})  # first-generation VT-x with shadow paging
VMM_MODES = MODES[1:]
MODE_TITLES = {"native": "native", "trap": "trap-and-emulate", "bt": "binary translation",
               "pv": "paravirtualization", "hw": "hardware assist"}
VMM_RESERVED = 0x10000  # host memory the VMM keeps for itself (its own trap table lives here)
VMM_TRAP_TABLE = 0x8000  # the real trap-table base while a software-virtualized guest runs
IF = int(Flag.IF)
DEFAULT_HW_EXITS = frozenset({"IN", "OUT", "HLT", "HYPERCALL"})
DEFAULT_EXCEPTION_BITMAP = frozenset({int(Vector.PAGE_FAULT)})  # first-generation VT-x with shadow paging


@dataclass(frozen=True)
class GuestSpec:
    """A guest to run: a kernel image and its boot modules."""

    kernel: Program
    """The guest kernel (or, with `bare`, the one program the VM runs)."""
    modules: tuple[Program, ...] = ()
    name: str = "guest"
    bare: bool = False
    """Load `kernel` as a bare-metal program at its origin (no boot-info block) instead of booting it."""


@dataclass
class VM:
    """One virtual machine: its memory region, virtual CPU, virtual devices and counters."""

    vm_id: int
    name: str
    mode: str
    base: int
    size: int
    vcpu: VCpu = field(default_factory=VCpu)
    regs: list[int] = field(default_factory=lambda: [0] * 9)
    pc: int = 0
    flags: int = 0
    timer_interval: int = 0
    timer_countdown: int = 0
    console: bytearray = field(default_factory=bytearray)
    stop_reason: str | None = None
    exit_code: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    bt: TranslationCache | None = None
    nested: NestedPaging | None = None
    shadow: ShadowPaging | None = None
    waiting_for_memory: int = -1
    """The guest-physical address this VM waits to have backed while the VMM reclaims host memory (-1: not)."""

    @property
    def ready(self) -> bool:
        """Can run now: not stopped, not waiting for host memory."""
        return self.stop_reason is None and self.waiting_for_memory < 0

    @property
    def console_text(self) -> str:
        """What the guest printed on its virtual console."""
        return self.console.decode("utf-8", errors="replace")

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one of this VM's counters."""
        self.counters[name] = self.counters.get(name, 0) + amount


class Hypervisor:
    """A host machine running one or more VMs in one VMM mode.

    It offers the Machine-like interface the rest of vizvm drives (step, run, steps, halted,
    snapshot, restore), so time travel, traces and the app work the same natively and virtualized.
    """

    def __init__(self, mode: str, guests: Sequence[GuestSpec], *, guest_memory: int = 1 << 20,
                 config: MachineConfig | None = None, costs: CostModel | None = None, quantum: int = 20_000,
                 hw_exits: frozenset[str] = DEFAULT_HW_EXITS,
                 exception_bitmap: frozenset[int] | None = None, memory_mode: str = "relocation",
                 host_levels: int = 4, nested_cache: int = 0, overcommit: OvercommitConfig | None = None,
                 software_tlb: int = 0) -> None:
        if mode not in VMM_MODES:
            raise ValueError(f"VMM mode must be one of {', '.join(VMM_MODES)}, got {mode!r}")
        if not guests:
            raise ValueError("a hypervisor needs at least one guest")
        if memory_mode not in MEMORY_MODES:
            raise ValueError(f"memory_mode must be one of {', '.join(MEMORY_MODES)}, got {memory_mode!r}")
        if overcommit is not None and memory_mode != "nested":
            raise ValueError("overcommit needs memory_mode='nested': the VMM remaps guest pages in the host's "
                             "page tables (ballooning, page sharing, frames on first touch)")
        if overcommit is not None and mode == "bt":
            raise ValueError("overcommit runs under trap, pv or hw: binary translation caches code by host "
                             "frame, and page sharing moves frames")
        base_config = config or MachineConfig()
        if base_config.tlb_managed == "software" or software_tlb:
            check_supported(mode, memory_mode, software_tlb, base_config.tlb_managed)
        guests_end = VMM_RESERVED + (overcommit.validate().host_frames * PAGE_SIZE if overcommit is not None
                                     else guest_memory * len(guests))
        table_space = {"nested": host_table_space(host_levels, guest_memory // PAGE_SIZE),
                       "shadow": SHADOW_TABLE_SPACE + (4 << 20 if base_config.page_levels == 1 else 0)
                       }.get(memory_mode, 0)
        host_size = guests_end + table_space * len(guests)
        self.machine = Machine(replace(base_config, memory_size=host_size).validate())
        self.mode = mode
        self.costs = costs or CostModel()
        self.quantum = quantum
        self.memory_mode = memory_mode
        self.hw_exits = hw_exits | (SHADOW_HW_EXITS if memory_mode == "shadow" else frozenset())
        if exception_bitmap is None:  # with nested paging (EPT) guest page faults no longer need to exit
            exception_bitmap = frozenset() if memory_mode == "nested" else DEFAULT_EXCEPTION_BITMAP
        self.exception_bitmap = exception_bitmap
        self.vms: list[VM] = []
        self.hostmem: HostMemory | None = None
        images: list[bytearray] = []
        for index, guest in enumerate(guests):
            base = 0 if overcommit is not None else VMM_RESERVED + index * guest_memory
            vm = VM(index, guest.name, mode, base, guest_memory)
            if overcommit is not None:  # loaded into a scratch machine; the pool backs what is not zero
                scratch = Machine(replace(base_config, memory_size=guest_memory).validate())
                vm.pc = (scratch.load_kernel_image(guest.kernel, guest.modules, base=0, memory_size=guest_memory)
                         if not guest.bare else guest.kernel.entry)
                if guest.bare:
                    scratch.write_memory(guest.kernel.origin, guest.kernel.image)
                images.append(scratch.memory)
                self.machine.load_addresses.update(scratch.load_addresses)
            elif guest.bare:
                self.machine.write_memory(vm.base + guest.kernel.origin, guest.kernel.image)
                vm.pc = guest.kernel.entry
            else:
                vm.pc = self.machine.load_kernel_image(guest.kernel, guest.modules, base=vm.base,
                                                       memory_size=guest_memory)
            vm.regs[SP] = guest_memory
            vm.timer_interval = vm.timer_countdown = base_config.timer_interval
            if mode == "bt":
                vm.bt = TranslationCache(self, vm)
            if memory_mode == "nested":
                start = guests_end + index * table_space
                vm.nested = NestedPaging(self.machine.memory, self.machine.sink, levels=host_levels,
                                         table_base=start, table_limit=start + table_space,
                                         cache_entries=nested_cache)
                if overcommit is None:
                    for page in range(guest_memory // PAGE_SIZE):
                        vm.nested.map_page(page * PAGE_SIZE, vm.base + page * PAGE_SIZE)
            if memory_mode == "shadow":
                start = guests_end + index * table_space
                vm.shadow = ShadowPaging(self, vm, levels=base_config.page_levels, table_base=start,
                                         table_limit=start + table_space)
            self.vms.append(vm)
        self.current = self.vms[0]
        if overcommit is not None:
            hostmem = self.hostmem = HostMemory(self, overcommit, VMM_RESERVED // PAGE_SIZE)
            for vm, image in zip(self.vms, images, strict=True):
                assert vm.nested is not None
                vm.nested.violation_hook = (lambda gpa, write, present, vm=vm:
                                            hostmem.violation(vm, gpa, write, present))
                hostmem.load(vm, image)
        self.machine.programs = tuple(p for g in guests for p in (g.kernel, *g.modules))
        self.guests: tuple[GuestSpec, ...] = tuple(guests)
        """What each VM runs, by VM id."""
        self.slice_used = 0
        self.vpid_tagging = memory_mode == "nested"  # EPT came with VPID-tagged TLBs: no flush on a VM switch
        self.soft_tlb = SoftTlbVmm(self, software_tlb) if base_config.tlb_managed == "software" else None
        """Software-managed TLB support (engine/soft_tlb.py): miss traps, tlbwr, Disco's software TLB."""
        cpu = self.machine.cpu
        cpu.trap_hook = self._on_trap
        cpu.write_watch = self._on_watched_write
        if memory_mode == "shadow":
            cpu.delivery_fault_hook = self._delivery_fault
        cpu.port_io_cycles = 0  # guest port I/O never reaches a physical device
        if mode == "pv":
            cpu.hypercall_hook = self._on_hypercall
        if mode == "hw":
            cpu.exit_hook = self._on_exit
        else:
            cpu.sensitive_hook = self._on_sensitive
        self._load(self.current)

    # ------------------------------------------------------------------ Machine-like interface
    @property
    def steps(self) -> int:
        """Steps executed by the host CPU."""
        return self.machine.steps

    @property
    def halted(self) -> bool:
        """True once every VM has stopped."""
        return all(vm.stop_reason is not None for vm in self.vms)

    @property
    def halt_reason(self) -> str | None:
        """Why the last VM stopped, once all have."""
        return self.current.stop_reason if self.halted else None

    @property
    def exit_code(self) -> int:
        """The first VM's exit code."""
        return self.vms[0].exit_code

    @property
    def console_output(self) -> str:
        """The first VM's console (for a single-VM host this is the guest's output)."""
        return self.vms[0].console_text

    @property
    def programs(self) -> tuple[Program, ...]:
        """Every loaded program (kernel and modules of each VM)."""
        return self.machine.programs

    @property
    def cpu(self) -> Any:
        """The real CPU."""
        return self.machine.cpu

    @property
    def config(self) -> MachineConfig:
        """The host machine's configuration."""
        return self.machine.config

    @property
    def mmu(self) -> Any:
        """The real MMU (walks guest tables, relocated into the VM's memory)."""
        return self.machine.mmu

    @property
    def memory(self) -> bytearray:
        """Host physical memory (the VMM's region, then each VM's)."""
        return self.machine.memory

    @property
    def ports(self) -> Any:
        """The real port bus and its counters (the I/O panel reads them)."""
        return self.machine.ports

    @property
    def sink(self) -> Any:
        """Where events are recorded during a step."""
        return self.machine.sink

    def read_word(self, address: int) -> int:
        """A host-physical word (for display)."""
        return self.machine.read_word(address)

    def step(self) -> StepResult:
        """One recorded host step (guest instruction, VMM work it triggers, or an interrupt)."""
        sink = self.machine.sink
        sink.events, sink.step = [], self.machine.steps  # a world switch belongs to this step's events
        try:
            self._reschedule_if_needed()
            switch_events = tuple(sink.events)
        finally:
            sink.events = None
        result = self.machine.step()
        self.slice_used += 1
        self._after_run()
        vmm_events = self._vmm_work(recording=True)
        if switch_events or vmm_events:
            return replace(result, events=switch_events + result.events + vmm_events)
        return result

    def _vmm_work(self, *, recording: bool = False) -> tuple[Any, ...]:
        """The VMM's periodic work between host steps: the page-sharing scanner and the balloon policy."""
        hostmem = self.hostmem
        if hostmem is None or not 0 <= hostmem.next_due() <= self.machine.steps:
            return ()
        sink = self.machine.sink
        if recording:
            sink.events, sink.step = [], self.machine.steps - 1
        try:
            hostmem.tick(self.machine.steps)
            return tuple(sink.events or ())
        finally:
            sink.events = None

    def run(self, max_steps: int) -> int:
        """Up to `max_steps` unrecorded host steps, switching VMs every `quantum` steps."""
        done = 0
        while done < max_steps and not self.halted:
            self._reschedule_if_needed()
            runnable = sum(vm.ready for vm in self.vms)
            chunk = max_steps - done
            if runnable > 1:  # stop at the end of the time slice so the scheduler can switch
                chunk = min(chunk, max(self.quantum - self.slice_used, 1))
            if self.hostmem is not None and self.hostmem.next_due() >= 0:  # stop when the VMM has work to do
                chunk = min(chunk, max(self.hostmem.next_due() - self.machine.steps, 1))
            ran = self.machine.run(chunk)
            self.slice_used += ran
            done += ran
            self._after_run()
            self._vmm_work()
            if ran == 0 and self.machine.cpu.halted and self.halted:
                break
        return done

    def counters(self) -> dict[str, int]:
        """Host counters plus every VM's counters (prefixed by vm number when there are several)."""
        counts = self.machine.counters()
        for vm in self.vms:
            prefix = f"vm{vm.vm_id}." if len(self.vms) > 1 else ""
            for name, value in vm.counters.items():
                counts[prefix + name] = value
            for part in (vm.nested, vm.shadow):
                if part is not None:
                    for name, value in part.counters.items():
                        counts[prefix + name] = value
        if self.hostmem is not None:
            counts.update(self.hostmem.counters)
            counts["host_frames_free"] = self.hostmem.free_frames
            counts["frames_saved_by_sharing"] = self.hostmem.saved_frames()
            for vm in self.vms:
                counts[f"vm{vm.vm_id}.balloon_pages"] = len(self.hostmem.balloon[vm.vm_id])
        return counts

    def frame_owners(self) -> list[str]:
        """Who owns each host frame: "vmm", "vm0", "vm1", ..., "vm0 host tables", "vm0 shadow tables", "free"."""
        owners = ["free"] * (len(self.machine.memory) // PAGE_SIZE)
        for frame in range(VMM_RESERVED // PAGE_SIZE):
            owners[frame] = "vmm"
        if self.hostmem is not None:  # frames from the pool, wherever they are
            for frame, label in self.hostmem.owner_labels().items():
                owners[frame] = label
        else:  # each VM's contiguous region
            for vm in self.vms:
                for frame in range(vm.base // PAGE_SIZE, (vm.base + vm.size) // PAGE_SIZE):
                    owners[frame] = f"vm{vm.vm_id}"
        for vm in self.vms:
            for part, label in ((vm.nested, "host tables"), (vm.shadow, "shadow tables")):
                if part is not None:
                    for frame in range(part.table_base // PAGE_SIZE, -(-part.next_table // PAGE_SIZE)):
                        owners[frame] = f"vm{vm.vm_id} {label}"
        return owners

    def frame_refcounts(self) -> dict[int, int]:
        """Host frames that more than one guest page maps (copy-on-write shared), with how many map each."""
        if self.hostmem is None:
            return {}
        return {frame: refs for frame, refs in self.hostmem.refs.items() if refs > 1}

    def ballooned_pages(self, vm_id: int) -> frozenset[int]:
        """Guest-physical page numbers VM `vm_id`'s balloon driver holds (their host frames were given back)."""
        if not 0 <= vm_id < len(self.vms):
            raise ValueError(f"no VM {vm_id}")
        return frozenset(self.hostmem.balloon[vm_id]) if self.hostmem is not None else frozenset()

    def guest_memory(self, vm: VM) -> bytes:
        """A VM's guest-physical memory, gPA 0 first (under overcommit, gathered from the frames behind it)."""
        if self.hostmem is not None:
            return self.hostmem.guest_memory(vm)
        return bytes(self.machine.memory[vm.base:vm.base + vm.size])

    def set_balloon_target(self, vm_id: int, pages: int) -> None:
        """Ask VM `vm_id`'s balloon driver to hold `pages` pages (overcommit only); it gets there at its own pace."""
        if self.hostmem is None:
            raise ValueError("ballooning needs an overcommitted host (Hypervisor(overcommit=...))")
        self.hostmem.set_target(self.vms[vm_id], pages)

    def charge_ept_violation(self, vm: VM, gpa: int, reason: str) -> None:
        """An EPT violation the VMM handles (a page backed on first touch, a copy-on-write break)."""
        vm.count("ept_violations")
        via = "vm-exit" if self.mode == "hw" else "trap"
        self._exit(vm, via, reason, self.machine.cpu.pc)
        self._charge(vm, self.costs.hw_exit if self.mode == "hw" else self.costs.vmm_trap)
        self._entry(vm)

    # ------------------------------------------------------------------ scheduling
    def _after_run(self) -> None:
        cpu = self.machine.cpu
        if cpu.halt_reason is not None and self.current.waiting_for_memory >= 0:
            cpu.halt_reason = None  # only this VM pauses, until the VMM has reclaimed a frame for it
            return
        if cpu.halt_reason is not None and self.current.stop_reason is None:
            # The host CPU stopped inside a VM (triple fault, bus error): that VM is dead, not the host.
            self.stop_vm(self.current, cpu.halt_reason, cpu.exit_code)

    def _reschedule_if_needed(self) -> None:
        if self.hostmem is not None:
            self.hostmem.wake_waiters()
        runnable = [vm for vm in self.vms if vm.ready]
        if not runnable:
            return
        if len(runnable) == 1 and runnable[0] is self.current:
            return
        if not self.current.ready or (len(runnable) > 1 and self.slice_used >= self.quantum):
            following = [vm for vm in self.vms[self.current.vm_id + 1:] + self.vms[:self.current.vm_id + 1]
                         if vm.ready]
            self.switch_to(following[0])

    def switch_to(self, vm: VM) -> None:
        """World switch: save the running VM's state and load `vm`'s onto the real CPU."""
        previous = self.current
        if previous is not vm:
            self._save(previous)
            self._record(VmSwitched(self.machine.sink.step, previous.vm_id, vm.vm_id))
            self.current = vm
            self._load(vm)
        self.slice_used = 0

    def _save(self, vm: VM) -> None:
        cpu, timer = self.machine.cpu, self.machine.timer
        vm.regs = cpu.regs[:9]
        vm.pc, vm.flags = cpu.pc, cpu.flags
        vm.timer_interval, vm.timer_countdown = timer.interval, timer.countdown
        if self.mode == "hw":  # in guest mode the real registers hold the guest's system state
            vcpu = vm.vcpu
            vcpu.ring, vcpu.vif = cpu.ring, bool(cpu.flags & IF)
            vcpu.cr0, vcpu.cr2, vcpu.cr3, vcpu.ksp, vcpu.idtr = cpu.cr0, cpu.cr2, cpu.cr3, cpu.ksp, cpu.idtr

    def _load(self, vm: VM) -> None:
        machine = self.machine
        cpu, mmu, timer, vcpu = machine.cpu, machine.mmu, machine.timer, vm.vcpu
        cpu.regs[:9] = vm.regs
        cpu.pc = vm.pc
        self._attach_mmu(vm)
        cpu.cr0, cpu.cr2, cpu.cr3 = vcpu.cr0, vcpu.cr2, vcpu.cr3
        cpu.paging = bool(vcpu.cr0 & CR0_PG)
        if self.vpid_tagging:  # VM entry loads the guest's cr3 with no flush: its TLB entries carry its VPID
            mmu.resume_cr3(vcpu.cr3)
        else:
            self.load_guest_cr3(vm, vcpu.cr3)
            mmu.flush_all("vm-switch")
        self.update_watch()
        timer.interval, timer.countdown = vm.timer_interval, vm.timer_countdown
        machine.interrupts.pending.clear()
        if self.mode == "hw":
            cpu.ring, cpu.flags = vcpu.ring, vm.flags
            cpu.idtr, cpu.ksp = vcpu.idtr, vcpu.ksp
            cpu.exit_names = self.hw_exits
        else:
            cpu.ring = real_ring_for(self.mode, vcpu.ring)
            cpu.flags = (vm.flags & ARITH_FLAGS) | IF
            cpu.idtr, cpu.ksp = VMM_TRAP_TABLE, 0
        cpu.halt_reason = None
        cpu.waiting = False
        cpu.attention = True
        self.guest_ring_changed(vm)

    def _attach_mmu(self, vm: VM) -> None:
        """Point the MMU at `vm`'s guest-physical memory: relocation bound, nested tables or shadows, VPID."""
        mmu = self.machine.mmu
        mmu.phys_base, mmu.phys_limit = vm.base, vm.size
        mmu.nested = vm.nested
        mmu.walk_dimension = "guest" if vm.shadow is None else "shadow"
        mmu.walk_relocates = vm.shadow is None
        if self.vpid_tagging:
            mmu.vpid, mmu.vpid_tagging = vm.vm_id, True

    def stop_vm(self, vm: VM, reason: str, exit_code: int) -> None:
        """Stop `vm` for good (power off, halt, or a safety violation); the host CPU pauses if it was running it."""
        if vm.stop_reason is not None:
            return
        vm.stop_reason, vm.exit_code = reason, exit_code
        self._record(VmStopped(self.machine.sink.step, vm.vm_id, reason, exit_code))
        if self.hostmem is not None:  # a VM that is off holds no machine memory
            self.hostmem.retire(vm)
        if vm is self.current:
            cpu = self.machine.cpu
            cpu.halt_reason = f"vm{vm.vm_id} stopped: {reason}"
            cpu.exit_code = exit_code
            cpu.attention = True

    # ------------------------------------------------------------------ guest memory from the VMM
    def guest_load(self, va: int) -> int:
        """A word of guest memory read by the VMM through the guest's own mappings (supervisor)."""
        shadow = self.current.shadow
        if shadow is not None:  # walk the guest's tables in software: never fault on a missing shadow
            return self.machine.read_word(shadow.guest_translate(va, False))
        return self.machine.cpu._load_word(va, supervisor=True)

    def guest_store(self, va: int, value: int) -> None:
        """A word of guest memory written by the VMM through the guest's own mappings (supervisor)."""
        shadow = self.current.shadow
        if shadow is not None:
            hpa = shadow.guest_translate(va, True)
            self.machine.write_memory(hpa, (value & WORD_MASK).to_bytes(4, "little"))
            shadow.guest_entry_written(hpa)
            return
        self.machine.cpu._store_word(va, value, supervisor=True)

    def load_guest_cr3(self, vm: VM, value: int) -> None:
        """The guest loaded cr3: the MMU walks its tables (relocated or nested), or their shadow."""
        mmu = self.machine.mmu
        if vm.shadow is not None:
            mmu.load_cr3(vm.shadow.root_for(value))
        else:
            mmu.load_cr3(value)

    def update_watch(self) -> None:
        """Pages whose stores the VMM must see: translated code (BT) and traced guest page tables (shadow)."""
        vm, cpu = self.current, self.machine.cpu
        pages: set[int] = set()
        if vm.bt is not None:
            pages |= vm.bt.page_blocks.keys()
        if vm.shadow is not None:
            pages |= vm.shadow.guest_pages
        cpu.watch_pages = pages

    def _on_watched_write(self, pa: int) -> None:
        vm = self.current
        if vm.shadow is not None and vm.shadow.guest_entry_written(pa):
            self._exit(vm, {"hw": "vm-exit", "bt": "callout"}.get(self.mode, "trap"), "guest page-table write",
                       (self.machine.cpu.pc - 8) & WORD_MASK)
            self._charge(vm, {"hw": self.costs.hw_exit, "bt": self.costs.bt_ptemod}.get(
                self.mode, self.costs.vmm_trap + self.costs.emulate))
            self._entry(vm)
        if vm.bt is not None and pa >> 12 in vm.bt.page_blocks:
            vm.bt.code_written(pa)

    def guest_ring_changed(self, vm: VM) -> None:
        """Binary translation runs guest-kernel code from the translation cache, user code directly."""
        cpu = self.machine.cpu
        if vm.bt is not None:
            vm.bt.select(kernel=vm.vcpu.ring == 0)
        else:
            cpu.icache, cpu.decode_miss = cpu.base_icache, cpu._decode

    def idle_until_interrupt(self, vm: VM) -> None:
        """HLT with virtual IF set: fast-forward the VM's virtual timer to its next tick."""
        timer = self.machine.timer
        if Vector.TIMER in vm.vcpu.pending or Vector.TIMER in self.machine.interrupts.pending:
            return
        if not timer.interval:
            self.stop_vm(vm, "hlt with interrupts enabled but no interrupt source", 0)
            return
        self.machine.cpu.cycles += timer.countdown
        timer.tick(timer.countdown)

    # ------------------------------------------------------------------ events and costs
    def _record(self, event: Any) -> None:
        events = self.machine.sink.events
        if events is not None:
            events.append(event)

    def _charge(self, vm: VM, cycles: int) -> None:
        self.machine.cpu.cycles += cycles
        vm.count("vmm_cycles", cycles)

    def _exit(self, vm: VM, via: str, reason: str, pc: int) -> None:
        vm.count("vmm_entries")
        vm.count(f"exits.{via}")
        self._record(VmExit(self.machine.sink.step, vm.vm_id, via, reason, pc, self._guest_ring(vm)))

    def _entry(self, vm: VM) -> None:
        self._record(VmEntry(self.machine.sink.step, vm.vm_id, self.machine.cpu.pc, self._guest_ring(vm)))

    def _guest_ring(self, vm: VM) -> int:
        # In guest mode (hw) the real ring is the guest's; software VMMs keep it in the virtual CPU.
        return int(self.machine.cpu.ring) if self.mode == "hw" else vm.vcpu.ring

    def _emulated(self, vm: VM, pc: int, spec: OpSpec, a: int, b: int, imm: int, effect: str) -> None:
        vm.count("emulated")
        self._record(Emulated(self.machine.sink.step, vm.vm_id, pc, format_instruction(spec, a, b, imm), effect))

    def _reflect(self, vm: VM, vector: int, error: int, address: int, return_pc: int) -> None:
        from_ring = vm.vcpu.ring
        if vector == Vector.PAGE_FAULT or vector == Vector.TLB_MISS:
            vm.vcpu.cr2 = address
        try:
            handler = reflect(self, vm, vector, error, return_pc)
        except (GuestTripleFault, Fault) as problem:
            detail = str(problem) if isinstance(problem, GuestTripleFault) else (
                f"{VECTOR_DESCRIPTIONS.get(problem.vector, problem.vector)} at {problem.address:#x} "
                "while delivering a trap to the guest")
            self.stop_vm(vm, f"guest triple fault: {detail}", 3)
            return
        vm.count("reflected")
        self._charge(vm, self.costs.reflect)
        self._record(Reflected(self.machine.sink.step, vm.vm_id, vector,
                               VECTOR_DESCRIPTIONS.get(vector, f"vector {vector}"), from_ring, handler))

    def deliver_pending(self, vm: VM) -> None:
        """The guest re-enabled interrupts: raise what the VMM held back on the real interrupt lines.

        The real CPU then delivers it at the next instruction boundary, back through the VMM into the
        guest, exactly when real hardware would have; lines are level-triggered, so one the VMM held
        and one raised meanwhile are the same pending interrupt.
        """
        vcpu = vm.vcpu
        if vcpu.vif and vcpu.pending and vm.stop_reason is None:
            self.machine.interrupts.pending |= vcpu.pending
            vcpu.pending.clear()
            self.machine.cpu.attention = True

    # ------------------------------------------------------------------ trap-and-emulate, BT, PV: traps
    def _on_trap(self, vector: int, error: int, address: int, fault_pc: int, return_pc: int) -> bool:
        vm = self.current
        if vector == Vector.MACHINE_CHECK:
            if vm.stop_reason is not None:  # the VMM already stopped it (out of host memory), with its reason
                return True
            if vm.waiting_for_memory >= 0:  # no frame for it yet: the instruction reruns once one is free
                cpu = self.machine.cpu
                cpu.halt_reason, cpu.attention = f"vm{vm.vm_id} waits for host memory", True
                return True
            self._exit(vm, "trap" if self.mode != "hw" else "vm-exit", "guest-physical address out of bounds",
                       fault_pc)
            self.stop_vm(vm, f"guest touched guest-physical address {address:#x}, outside its "
                             f"{vm.size:#x} bytes: stopped by the VMM", 4)
            return True
        if vector == Vector.PAGE_FAULT and vm.shadow is not None and self._shadow_fault(vm, error, address, fault_pc):
            return True
        if vector == Vector.TLB_MISS and self.soft_tlb is not None:
            self.soft_tlb.on_miss(vm, error, address, fault_pc, return_pc)
            return True
        if self.mode == "hw":
            return self._hw_trap(vm, vector, fault_pc)
        cpu = self.machine.cpu
        if vector in (Vector.TIMER, Vector.DEVICE):
            self._exit(vm, "trap", VECTOR_DESCRIPTIONS[vector], return_pc)
            self._charge(vm, self.costs.vmm_trap)
            if vm.vcpu.vif:
                self._reflect(vm, vector, 0, 0, return_pc)
            else:
                vm.vcpu.pending.add(vector)
                vm.count("interrupts_deferred")
            self._entry(vm)
            return True
        if vector == Vector.PRIVILEGED and cpu.ring != 3:
            self._trap_and_emulate(vm, fault_pc)
            return True
        cause = VECTOR_DESCRIPTIONS.get(vector, f"vector {vector}")
        self._exit(vm, "trap", cause, fault_pc)
        # BT intercepts system calls with its own (cheaper than a fault) path: Adams-Agesen's +~2000 cycles.
        bt_syscall = self.mode == "bt" and vector == Vector.SYSCALL
        self._charge(vm, self.costs.bt_syscall if bt_syscall else self.costs.vmm_trap)
        self._reflect(vm, vector, error, address, return_pc)
        self._entry(vm)
        return True

    def _trap_and_emulate(self, vm: VM, pc: int) -> None:
        cpu = self.machine.cpu
        try:
            pa = self.machine.mmu.translate(pc, READ, False) if cpu.paging else self.machine.mmu.relocate(pc)
            _handler, a, b, imm, _cycles, _special, spec = cpu.decode_at(pa, pc)
        except Fault as fault:  # cannot happen for an instruction that just faulted, but never crash
            self.stop_vm(vm, f"VMM could not decode the instruction at {pc:#x} ({fault.vector})", 5)
            return
        self._exit(vm, "trap", f"privileged instruction {spec.mnemonic}", pc)
        self._charge(vm, self.costs.vmm_trap + self.costs.emulate)
        try:
            effect = emulate(self, vm, spec, a, b, imm, pc)
        except Fault as fault:
            cpu.pc = pc
            self._reflect(vm, fault.vector, fault.error_code, fault.address, pc)
            self._entry(vm)
            return
        self._emulated(vm, pc, spec, a, b, imm, effect)
        vm.count("trapped_instructions")
        self.machine.timer.tick(1)  # the emulated instruction retires in the guest
        if vm.stop_reason is None:
            self.deliver_pending(vm)
            self._entry(vm)

    def _on_sensitive(self, spec: OpSpec, a: int, b: int, imm: int, pc: int) -> None:
        """A sensitive instruction ran directly: report it if it saw real instead of virtual state."""
        vm, cpu = self.current, self.machine.cpu
        vcpu = vm.vcpu
        name = spec.name
        if name == "SMSW":
            real, virtual = cpu.regs[a], vcpu.status_word()
            why = "the status word reveals the real ring, not the guest's"
        elif name == "SIDT":
            real, virtual = cpu.regs[a], vcpu.idtr
            why = "the trap-table base is the VMM's, not the guest's (the 'red pill')"
        elif name == "PUSHF":
            real = self.machine.read_word(self._stack_pa(cpu.regs[SP]))
            virtual = (real & ~IF) | (IF if vcpu.vif else 0)
            why = "the pushed IF is the real one, which the VMM keeps on"
        else:  # POPF
            real_popped = self.machine.read_word(self._stack_pa((cpu.regs[SP] - 4) & WORD_MASK))
            if vcpu.ring != 0:
                return
            real, virtual = int(vcpu.vif) * IF, real_popped & IF
            why = "popf outside ring 0 silently ignored the guest's IF change: no trap, so the VMM never knew"
        if real != virtual:
            vm.count("fidelity_violations")
            self._record(FidelityViolation(self.machine.sink.step, vm.vm_id, pc,
                                           format_instruction(spec, a, b, imm), real, virtual, why))

    def _stack_pa(self, va: int) -> int:
        cpu, mmu = self.machine.cpu, self.machine.mmu
        return mmu.translate(va, READ, False) if cpu.paging else mmu.relocate(va)

    # ------------------------------------------------------------------ BT callouts
    def callout(self, vm: VM, spec: OpSpec, a: int, b: int, imm: int) -> None:
        """A translated privileged or sensitive instruction calls into the VMM instead of trapping."""
        cpu = self.machine.cpu
        pc = (cpu.pc - 8) & WORD_MASK
        self._exit(vm, "callout", f"translated {spec.mnemonic}", pc)
        self._charge(vm, self.costs.emulate)
        try:
            effect = emulate(self, vm, spec, a, b, imm, pc)
        except Fault as fault:
            cpu.pc = pc
            self._reflect(vm, fault.vector, fault.error_code, fault.address, pc)
            self._entry(vm)
            return
        self._emulated(vm, pc, spec, a, b, imm, effect)
        if vm.stop_reason is None:
            self.deliver_pending(vm)
            self._entry(vm)

    # ------------------------------------------------------------------ PV hypercalls
    def _on_hypercall(self, cpu: Any, number: int) -> None:
        from engine.hypercalls import dispatch

        vm = self.current
        pc = (cpu.pc - 8) & WORD_MASK
        self._exit(vm, "hypercall", f"hypercall {number}", pc)
        self._charge(vm, self.costs.hypercall)
        vm.count("hypercalls")
        args = (cpu.regs[1], cpu.regs[2], cpu.regs[3])
        try:
            name, result, detail, items = dispatch(self, vm, number, args)
        except Fault as fault:
            cpu.pc = pc
            self._reflect(vm, fault.vector, fault.error_code, fault.address, pc)
            self._entry(vm)
            return
        self._charge(vm, self.costs.hypercall_item * items)
        if name != "iret":
            cpu.regs[0] = result & WORD_MASK
        self._record(HypercallMade(self.machine.sink.step, vm.vm_id, number, name, args, result, detail))
        if vm.stop_reason is None:
            self.deliver_pending(vm)
            self._entry(vm)

    # ------------------------------------------------------------------ hardware assist
    def _on_exit(self, spec: OpSpec, a: int, b: int, imm: int, pc: int) -> None:
        vm, cpu = self.current, self.machine.cpu
        reasons = {"IN": f"I/O instruction (port {imm:#x})", "OUT": f"I/O instruction (port {imm:#x})",
                   "HLT": "HLT", "HYPERCALL": "VMCALL", "MOVCR": "control-register access"}
        self._exit(vm, "vm-exit", reasons.get(spec.name, spec.mnemonic), pc)
        self._charge(vm, self.costs.hw_exit)
        if spec.name == "IN":
            self._charge(vm, self.costs.virtual_device)
            cpu.regs[a] = port_read(vm, self, imm)
            effect = f"virtual device port {imm:#x} -> {cpu.regs[a]:#x}"
        elif spec.name == "OUT":
            self._charge(vm, self.costs.virtual_device)
            effect = port_write(vm, self, imm, cpu.regs[b])
        elif spec.name == "HLT":
            cpu.op_hlt(a, b, imm)  # in guest mode the CPU itself waits for the (virtual) interrupt
            effect = "guest waits for an interrupt" if cpu.waiting else "guest halts"
            if not cpu.waiting:
                self.stop_vm(vm, "hlt with interrupts disabled", 0)
        elif spec.name == "HYPERCALL":
            cpu.pc = pc
            self._emulated(vm, pc, spec, a, b, imm, "no hypercall interface in this mode: #UD injected")
            cpu._deliver(Vector.INVALID_OPCODE, 0, 0, pc, pc)
            self._entry(vm)
            return
        else:
            effect = emulate(self, vm, spec, a, b, imm, pc)
        self._emulated(vm, pc, spec, a, b, imm, effect)
        if vm.stop_reason is None:
            self._entry(vm)

    def _shadow_fault(self, vm: VM, error: int, address: int, pc: int) -> bool:
        """A real page fault on the shadow tables. Hidden: fixed here (True). True: the guest must see it."""
        assert vm.shadow is not None
        via = "vm-exit" if self.mode == "hw" else "trap"
        self._exit(vm, via, "page fault on the shadow page table", pc)
        self._charge(vm, self.costs.hw_exit if self.mode == "hw" else self.costs.vmm_trap)
        try:
            hidden, guest_error = vm.shadow.handle_fault(address, error)
        except Fault:
            self.stop_vm(vm, f"guest page tables point outside its memory (at {address:#x})", 4)
            return True
        if hidden:
            vm.count("hidden_page_faults")
            self._entry(vm)
            return True
        vm.count("true_page_faults")
        cpu = self.machine.cpu
        cpu.cr2 = vm.vcpu.cr2 = address
        if self.mode == "hw":  # inject it through the guest's own trap table, with the guest's error code
            cpu.trap_hook = None
            try:
                cpu._deliver(Vector.PAGE_FAULT, guest_error, address, pc, pc)
            finally:
                cpu.trap_hook = self._on_trap
        else:
            self._reflect(vm, Vector.PAGE_FAULT, guest_error, address, pc)
        self._entry(vm)
        return True

    def _delivery_fault(self, address: int, error: int) -> bool:
        """A page fault while the CPU delivered a trap (pushing the frame): a shadow miss is fixed here."""
        vm = self.current
        if vm.shadow is None:
            return False
        try:
            hidden, _ = vm.shadow.handle_fault(address, error)
        except Fault:
            return False
        if hidden:
            vm.count("hidden_page_faults")
            self._charge(vm, self.costs.hw_exit if self.mode == "hw" else self.costs.vmm_trap)
        return hidden

    def _hw_trap(self, vm: VM, vector: int, fault_pc: int) -> bool:
        if vector in (Vector.TIMER, Vector.DEVICE):
            self._exit(vm, "vm-exit", "external interrupt", fault_pc)
            self._charge(vm, self.costs.hw_exit)
            self._entry(vm)  # the VMM injects it: the CPU delivers it through the guest's own trap table
        elif vector in self.exception_bitmap:
            self._exit(vm, "vm-exit", f"exception: {VECTOR_DESCRIPTIONS.get(vector, vector)}", fault_pc)
            self._charge(vm, self.costs.hw_exit)
            self._entry(vm)
        vm.count("guest_traps")
        return False  # in guest mode the trap goes through the guest's trap table in guest ring 0

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> MachineState:
        """Machine state plus the VMM's (virtual CPUs, devices, counters, translation cache)."""
        state = self.machine.snapshot()
        vms = tuple(self._vm_state(vm) for vm in self.vms)
        devices = {**state.devices, "vmm": (self.current.vm_id, self.slice_used, vms,
                                            self.hostmem.state() if self.hostmem is not None else None)}
        if self.soft_tlb is not None:
            devices["soft_tlb"] = self.soft_tlb.state()
        return MachineState(state.config, state.memory, state.cpu, state.tlb, state.mmu, devices,
                            state.rng_state, state.programs)

    def restore(self, state: MachineState) -> None:
        """Return host and VMM exactly to `state`."""
        current, slice_used, vms, hostmem = state.devices["vmm"]
        self.machine.restore(state)
        if self.hostmem is not None:
            self.hostmem.restore(hostmem)
        for vm, saved in zip(self.vms, vms, strict=True):
            self._restore_vm(vm, saved)
        self.current = self.vms[current]
        self.slice_used = slice_used
        self._attach_mmu(self.current)
        self.update_watch()
        if self.soft_tlb is not None:
            self.soft_tlb.restore(state.devices["soft_tlb"])
        self.guest_ring_changed(self.current)

    @staticmethod
    def _vm_state(vm: VM) -> tuple[Any, ...]:
        v = vm.vcpu
        return (tuple(vm.regs), vm.pc, vm.flags, vm.timer_interval, vm.timer_countdown, bytes(vm.console),
                vm.stop_reason, vm.exit_code, tuple(sorted(vm.counters.items())), vm.waiting_for_memory,
                (v.ring, v.vif, v.cr0, v.cr2, v.cr3, v.ksp, v.idtr, tuple(sorted(v.pending))),
                vm.bt.state() if vm.bt is not None else None,
                vm.nested.state() if vm.nested is not None else None,
                vm.shadow.state() if vm.shadow is not None else None)

    def _restore_vm(self, vm: VM, saved: tuple[Any, ...]) -> None:
        (regs, vm.pc, vm.flags, vm.timer_interval, vm.timer_countdown, console, vm.stop_reason, vm.exit_code,
         counters, vm.waiting_for_memory, vcpu, bt_state, nested_state, shadow_state) = saved
        vm.regs = list(regs)
        vm.console = bytearray(console)
        vm.counters = dict(counters)
        v = vm.vcpu
        v.ring, v.vif, v.cr0, v.cr2, v.cr3, v.ksp, v.idtr, pending = vcpu
        v.pending = set(pending)
        if vm.bt is not None:
            vm.bt.restore(bt_state)
        if vm.nested is not None:
            vm.nested.restore(nested_state)
        if vm.shadow is not None:
            vm.shadow.restore(shadow_state)

