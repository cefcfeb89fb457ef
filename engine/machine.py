"""The Machine: memory, MMU, devices and CPU wired together, with boot, step, run and snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.cpu import CPU
from engine.devices import (
    PORT_CONSOLE_DATA,
    PORT_CONSOLE_STATUS,
    PORT_POWER,
    PORT_TIMER_COUNTDOWN,
    PORT_TIMER_INTERVAL,
    Console,
    InterruptController,
    PortBus,
    PowerControl,
    Timer,
)
from engine.events import Event
from engine.isa import NUM_REGS, PAGE_SIZE, SP, TLB_MANAGEMENT, WORD_MASK
from engine.mmu import MMU, TLB_POLICIES, Sink, split_levels
from engine.program import Program

KERNEL_BASE = 0x1000
BOOT_INFO_ADDRESS = 0x500
BOOT_INFO_MAGIC = 0x49424D56  # "VMBI"
BOOT_INFO_HEADER = 16  # magic, memory size, module count, page levels
BOOT_MODULE_RECORD = 28  # physical start, length, entry point, 16-byte name
MODULE_BASE = 0x40000
MODULE_STRIDE = 0x10000
MODULE_NAME_BYTES = 16


class ConfigError(ValueError):
    """A machine configuration value is out of range."""


@dataclass(frozen=True)
class MachineConfig:
    """Everything that determines a machine, together with the loaded program(s)."""

    memory_size: int = 1 << 20
    """Physical memory in bytes (a multiple of 4 KiB, 64 KiB to 64 MiB)."""
    page_levels: int = 2
    """Page-table levels, 1 to 4 (2 = 10 + 10 bits, like 32-bit x86)."""
    tlb_entries: int = 16
    """TLB capacity."""
    tlb_policy: str = "lru"
    """TLB replacement: lru, fifo or random (seeded)."""
    tlb_tagged: bool = False
    """Tag TLB entries with the address-space id (cr3 & 0xfff) instead of flushing on cr3 loads."""
    tlb_managed: str = "hardware"
    """Who fills the TLB: "hardware" (the MMU walks the page tables) or "software" (a miss traps, TLB_MISS,
    and the kernel installs the entry with tlbwr, as on MIPS)."""
    timer_interval: int = 0
    """Timer period in instructions at reset (0 = off until a program sets it through port 0x20)."""
    seed: int = 0
    """Seed for every random choice the engine makes (random TLB replacement)."""
    console_input: str = ""
    """Bytes waiting on the console input at reset."""

    def validate(self) -> MachineConfig:
        """Raise ConfigError naming the field if a value is out of range; return self."""
        if self.memory_size % 4096 or not (1 << 16) <= self.memory_size <= (1 << 26):
            raise ConfigError(f"memory_size must be a multiple of 4096 between 64 KiB and 64 MiB, "
                              f"got {self.memory_size}")
        try:
            split_levels(self.page_levels)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if not 1 <= self.tlb_entries <= 4096:
            raise ConfigError(f"tlb_entries must be 1..4096, got {self.tlb_entries}")
        if self.tlb_policy not in TLB_POLICIES:
            raise ConfigError(f"tlb_policy must be one of {', '.join(TLB_POLICIES)}, got {self.tlb_policy!r}")
        if self.tlb_managed not in TLB_MANAGEMENT:
            raise ConfigError(f"tlb_managed must be one of {', '.join(TLB_MANAGEMENT)}, got {self.tlb_managed!r}")
        if self.tlb_managed == "software" and self.tlb_entries < 2:
            # One entry livelocks: the handler's fill for the data page evicts the instruction's page.
            raise ConfigError("a software-managed TLB needs tlb_entries >= 2 (an instruction's page and its "
                              f"data page), got {self.tlb_entries}")
        if self.timer_interval < 0:
            raise ConfigError("timer_interval must be >= 0")
        return self


@dataclass(frozen=True)
class StepResult:
    """What one step did: the instruction (or interrupt) and every event it caused, in order."""

    step: int
    """Step number of this step (0-based; the machine's step counter before it ran)."""
    pc: int
    """pc before the step."""
    events: tuple[Event, ...]
    changed_registers: tuple[str, ...]
    """Names of registers, flags, ring or control registers whose value changed."""
    halted: bool


@dataclass(frozen=True)
class MachineState:
    """A complete, immutable copy of the machine (see Machine.snapshot)."""

    config: MachineConfig
    memory: tuple[bytes, ...]  # physical memory, one bytes object per 4 KiB page (unchanged pages shared)
    cpu: dict[str, Any]
    tlb: tuple[tuple[int, int], ...]
    mmu: dict[str, Any]
    devices: dict[str, Any]
    rng_state: Any
    programs: tuple[Program, ...] = field(default=())

    @property
    def steps(self) -> int:
        """Step counter at the time of the snapshot."""
        return int(self.cpu["steps"])


class Machine:
    """A bare-metal machine: one CPU, physical memory, MMU with TLB, console, timer and power port."""

    def __init__(self, config: MachineConfig | None = None) -> None:
        self.config = (config or MachineConfig()).validate()
        cfg = self.config
        self.sink = Sink()
        self.memory = bytearray(cfg.memory_size)
        mem32 = memoryview(self.memory).cast("I")
        self.mmu = MMU(mem32, cfg.memory_size, self.sink, levels=cfg.page_levels, tlb_entries=cfg.tlb_entries,
                       tlb_policy=cfg.tlb_policy, tlb_tagged=cfg.tlb_tagged, seed=cfg.seed,
                       tlb_managed=cfg.tlb_managed)
        self.interrupts = InterruptController(self.sink)
        self.timer = Timer(self.interrupts, cfg.timer_interval)
        self.console = Console(self.interrupts, cfg.console_input)
        self.power = PowerControl()
        self.ports = PortBus(self.sink)
        self.ports.attach(self.console, PORT_CONSOLE_DATA, PORT_CONSOLE_STATUS)
        self.ports.attach(self.timer, PORT_TIMER_INTERVAL, PORT_TIMER_COUNTDOWN)
        self.ports.attach(self.power, PORT_POWER)
        self.cpu = CPU(self.memory, self.mmu, self.ports, self.interrupts, self.timer, self.sink)
        self.cpu.regs[SP] = cfg.memory_size
        self.programs: tuple[Program, ...] = ()
        self.load_addresses: dict[str, int] = {}
        """Physical address each loaded program's image was written at, by program name."""
        self._last_pages: tuple[bytes, ...] | None = None

    # ------------------------------------------------------------------ loading
    def write_memory(self, address: int, data: bytes) -> None:
        """Copy `data` into physical memory (a loader or DMA write; drops cached decodes)."""
        if address < 0 or address + len(data) > len(self.memory):
            raise ConfigError(f"{len(data)} bytes at {address:#x} do not fit in {len(self.memory):#x} bytes of memory")
        self.memory[address:address + len(data)] = data
        self.cpu.base_icache.clear()

    def load_bare(self, program: Program) -> None:
        """Load a bare-metal program at its origin; it starts in ring 0 with paging off."""
        self.write_memory(program.origin, program.image)
        self.load_addresses[program.name] = program.origin
        self.cpu.pc = program.entry
        self.programs = (program,)

    def boot_kernel(self, kernel: Program, modules: Sequence[Program]) -> None:
        """Load the kernel and user programs as boot modules, with the boot-info block at 0x500."""
        self.cpu.pc = self.load_kernel_image(kernel, modules, base=0, memory_size=self.config.memory_size)
        self.programs = (kernel, *modules)

    def load_kernel_image(self, kernel: Program, modules: Sequence[Program], *, base: int, memory_size: int) -> int:
        """Write kernel, modules and boot info into (guest-)physical memory starting at `base`; returns the entry.

        The boot-info block (docs/isa.md, "Boot") holds the magic, the memory size, the module count
        and the page-table levels the MMU walks, then per module its physical start, length, entry
        point (a user virtual address) and 16-byte NUL-padded name.
        """
        info_end = BOOT_INFO_ADDRESS + BOOT_INFO_HEADER + BOOT_MODULE_RECORD * len(modules)
        if kernel.origin < info_end:
            raise ConfigError(f"kernel origin {kernel.origin:#x} overlaps the boot-info block "
                              f"({BOOT_INFO_ADDRESS:#x}-{info_end:#x} for {len(modules)} modules)")
        if kernel.end > MODULE_BASE:
            raise ConfigError(f"kernel image ends at {kernel.end:#x}, past the module area at {MODULE_BASE:#x}")
        if MODULE_BASE + MODULE_STRIDE * len(modules) > memory_size:
            raise ConfigError(f"{len(modules)} modules do not fit in {memory_size:#x} bytes of memory")
        self.write_memory(base + kernel.origin, kernel.image)
        self.load_addresses[kernel.name] = base + kernel.origin
        info = [BOOT_INFO_MAGIC, memory_size, len(modules), self.config.page_levels]
        blob = b"".join(word.to_bytes(4, "little") for word in info)
        for index, module in enumerate(modules):
            start = MODULE_BASE + MODULE_STRIDE * index
            if len(module.image) > MODULE_STRIDE:
                raise ConfigError(f"module {module.name} is {len(module.image)} bytes; the limit is {MODULE_STRIDE}")
            self.write_memory(base + start, module.image)
            self.load_addresses.setdefault(module.name, base + start)
            name = module.name.rsplit("/", 1)[-1].removesuffix(".s").encode()[:MODULE_NAME_BYTES - 1]
            for word in (start, len(module.image), module.entry & WORD_MASK):
                blob += word.to_bytes(4, "little")
            blob += name.ljust(MODULE_NAME_BYTES, b"\0")
        self.write_memory(base + BOOT_INFO_ADDRESS, blob)
        return kernel.entry

    # ------------------------------------------------------------------ execution
    @property
    def halted(self) -> bool:
        """True once the machine has stopped."""
        return self.cpu.halted

    @property
    def halt_reason(self) -> str | None:
        """Why the machine stopped, or None while it can run."""
        return self.cpu.halt_reason

    @property
    def exit_code(self) -> int:
        """Exit code written to the power port (or 1 bus error, 3 triple fault)."""
        return self.cpu.exit_code

    @property
    def steps(self) -> int:
        """Steps executed since reset."""
        return self.cpu.steps

    @property
    def console_output(self) -> str:
        """Everything the console printed."""
        return self.console.text

    def run(self, max_steps: int) -> int:
        """Run up to `max_steps` steps with no recording; returns how many ran (fewer if it halted)."""
        return self.cpu.run(max_steps)

    def step(self) -> StepResult:
        """Run one step and return it with every event it caused."""
        before = self._visible_registers()
        start, pc = self.cpu.steps, self.cpu.pc
        events: list[Any] = []
        self.sink.events = events
        try:
            self.cpu.run(1)
        finally:
            self.sink.events = None
        after = self._visible_registers()
        changed = tuple(name for name, value in after.items() if before[name] != value)
        return StepResult(start, pc, tuple(events), changed, self.cpu.halted)

    def _visible_registers(self) -> dict[str, int]:
        cpu = self.cpu
        values = {f"r{i}": cpu.regs[i] for i in range(SP)}
        values.update(sp=cpu.regs[SP], pc=cpu.pc, flags=cpu.flags, ring=cpu.ring, **cpu.control_registers)
        return values

    def counters(self) -> dict[str, int]:
        """Every counter the engine keeps (instructions, cycles, traps, TLB, walks, ports)."""
        cpu = self.cpu
        counts = {"steps": cpu.steps, "instructions": cpu.instructions, "cycles": cpu.cycles,
                  "traps": sum(cpu.trap_counts.values())}
        counts.update(self.mmu.counters)
        counts.update(self.ports.counters)
        return counts

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> MachineState:
        """Capture the complete machine state (restore-then-run equals run)."""
        cpu = self.cpu
        cpu_state = {
            "regs": tuple(cpu.regs[:NUM_REGS]), "pc": cpu.pc, "flags": cpu.flags, "ring": cpu.ring,
            "cr0": cpu.cr0, "cr2": cpu.cr2, "cr3": cpu.cr3, "ksp": cpu.ksp, "idtr": cpu.idtr,
            "paging": cpu.paging, "waiting": cpu.waiting, "halt_reason": cpu.halt_reason,
            "exit_code": cpu.exit_code, "steps": cpu.steps, "cycles": cpu.cycles,
            "instructions": cpu.instructions, "trap_counts": tuple(sorted(cpu.trap_counts.items())),
            "irets": cpu.irets,
        }
        mmu = self.mmu
        mmu_state = {"root": mmu.root, "asid": mmu.asid, "asid_key": mmu.asid_key, "last_key": mmu.last_key,
                     "counters": tuple(sorted(mmu.counters.items()))}
        devices = {
            "console_output": bytes(self.console.output), "console_input": self.console.input,
            "console_input_pos": self.console.input_pos, "timer_interval": self.timer.interval,
            "timer_countdown": self.timer.countdown, "pending": tuple(sorted(self.interrupts.pending)),
            "power": self.power.exit_code, "port_counters": tuple(sorted(self.ports.counters.items())),
        }
        return MachineState(self.config, self._memory_pages(), cpu_state,
                            tuple(mmu.tlb.items()), mmu_state, devices, mmu.rng.getstate(), self.programs)

    def _memory_pages(self) -> tuple[bytes, ...]:
        """Memory as pages, reusing the previous snapshot's page objects where nothing changed.

        A checkpoint then costs one memcmp per page plus copies of the pages that changed, instead of
        compressing all of memory: cheap enough to checkpoint often during a flat-out run.
        """
        memory = bytes(self.memory)
        previous = self._last_pages
        pages = []
        for index in range(0, len(memory), PAGE_SIZE):
            chunk = memory[index:index + PAGE_SIZE]
            old = previous[index // PAGE_SIZE] if previous is not None else None
            pages.append(old if old is not None and chunk == old else chunk)
        self._last_pages = tuple(pages)
        return self._last_pages

    def restore(self, state: MachineState) -> None:
        """Return to `state` exactly (memory, registers, TLB, devices, counters, RNG)."""
        if state.config != self.config:
            raise ConfigError("snapshot was taken on a machine with a different configuration")
        memory = b"".join(state.memory)
        if len(memory) != len(self.memory):
            raise ConfigError("snapshot memory size does not match this machine")
        self.memory[:] = memory
        cpu, c = self.cpu, state.cpu
        cpu.regs[:NUM_REGS] = list(c["regs"])
        cpu.pc, cpu.flags, cpu.ring = c["pc"], c["flags"], c["ring"]
        cpu.cr0, cpu.cr2, cpu.cr3, cpu.ksp, cpu.idtr = c["cr0"], c["cr2"], c["cr3"], c["ksp"], c["idtr"]
        cpu.paging, cpu.waiting, cpu.halt_reason = c["paging"], c["waiting"], c["halt_reason"]
        cpu.exit_code, cpu.steps, cpu.cycles = c["exit_code"], c["steps"], c["cycles"]
        cpu.instructions, cpu.irets = c["instructions"], c["irets"]
        cpu.trap_counts = dict(c["trap_counts"])
        cpu.base_icache.clear()
        mmu, m = self.mmu, state.mmu
        mmu.tlb.clear()
        mmu.tlb.update(state.tlb)
        mmu.root, mmu.asid, mmu.asid_key, mmu.last_key = m["root"], m["asid"], m["asid_key"], m["last_key"]
        mmu.counters.clear()
        mmu.counters.update(dict(m["counters"]))
        mmu.rng.setstate(state.rng_state)
        d = state.devices
        self.console.output = bytearray(d["console_output"])
        self.console.input, self.console.input_pos = d["console_input"], d["console_input_pos"]
        self.timer.interval, self.timer.countdown = d["timer_interval"], d["timer_countdown"]
        self.interrupts.pending = set(d["pending"])
        cpu.attention = cpu.halt_reason is not None or cpu.waiting or bool(self.interrupts.pending)
        self.power.exit_code = d["power"]
        self.ports.counters.clear()
        self.ports.counters.update(dict(d["port_counters"]))
        self.programs = state.programs

    def read_word(self, address: int) -> int:
        """Physical word at `address` (for display; no events, no side effects)."""
        return int.from_bytes(self.memory[address:address + 4], "little") & WORD_MASK


def config_with(config: MachineConfig, **changes: Any) -> MachineConfig:
    """A validated copy of `config` with `changes` applied."""
    return replace(config, **changes).validate()
