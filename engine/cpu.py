"""The CPU: privilege rings, fetch-decode-execute from the opcode table, trap delivery and IRET.

`run(n)` is the only execution loop; `Machine.step()` is `run(1)` with an event list attached, so a
recorded step and an unrecorded run cannot diverge. With nobody recording, the loop creates no event
objects: decoded instructions are cached per physical address (invalidated by stores to that address).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.costs import CostModel
from engine.devices import PORT_POWER, InterruptController, PortBus, Timer
from engine.disasm import NO_BASE, format_instruction
from engine.events import (
    ControlRegisterWrite,
    InstructionExecuted,
    MachineHalted,
    MemoryAccess,
    TrapReturn,
    TrapTaken,
)
from engine.isa import (
    ARITH_FLAGS,
    CR,
    CR0_PG,
    CR_NAME_OF,
    FLAGS_WRITABLE,
    FRAME_RING_SHIFT,
    INSTRUCTION_SIZE,
    MSW_IF,
    MSW_PG,
    NUM_REGS,
    OPCODE_BY_NUMBER,
    OPCODES,
    PTE_FRAME_MASK,
    SP,
    TRAP_FRAME_WORDS,
    VECTOR_DESCRIPTIONS,
    WORD_MASK,
    Flag,
    Form,
    InstrClass,
    OpSpec,
    Vector,
)
from engine.mmu import FETCH, MMU, READ, WRITE, BusError, Fault, Sink

Z, N, C, V, IF = Flag.Z.value, Flag.N.value, Flag.C.value, Flag.V.value, Flag.IF.value
SIGN = 0x8000_0000
NOT_ARITH = ~int(ARITH_FLAGS) & WORD_MASK
TRAP_DELIVERY_CYCLES = CostModel.trap_delivery
VALID_CRS = frozenset(int(cr) for cr in CR)
# Register-number fields of each form that must name a real register (memory bases may also be NO_BASE).
_REG_FIELDS: dict[Form, tuple[str, ...]] = {
    Form.NONE: (), Form.I: (), Form.R: ("a",), Form.RR: ("a", "b"), Form.RI: ("a",),
    Form.MEM_LOAD: ("a", "base_b"), Form.MEM_STORE: ("base_a", "b"), Form.MEM: ("base_a",),
    Form.CR_WRITE: ("b",), Form.CR_READ: ("a",), Form.PORT_IN: ("a",), Form.PORT_OUT: ("b",),
}

Handler = Callable[[int, int, int], None]
Decoded = tuple[Handler, int, int, int, int, int, OpSpec]
# The `special` element of a decoded instruction: what the run loop must do around it.
PLAIN = 0  # innocuous: cannot change ring, paging, devices or interrupts
SPECIAL = 1  # may change ring, IF, paging or devices: cached loop state is re-read afterwards
PRIVILEGED = 2  # SPECIAL, and faults outside ring 0


class CPU:
    """Architectural state plus the execution loop. Memory, MMU and devices are owned by the Machine."""

    def __init__(self, mem: bytearray, mmu: MMU, ports: PortBus, interrupts: InterruptController,
                 timer: Timer, sink: Sink) -> None:
        self.mem = mem
        self.mem32 = memoryview(mem).cast("I")
        self.mem_size = len(mem)
        self.mmu = mmu
        self.ports = ports
        self.interrupts = interrupts
        self.timer = timer
        self.sink = sink
        interrupts.on_raise = self._interrupt_raised
        # 16 slots so a NO_BASE (0xF) memory base reads as 0 without a branch; only 0..8 are writable.
        self.regs: list[int] = [0] * 16
        self.pc = 0
        self.flags = 0
        self.ring = 0
        self.cr0 = 0
        self.cr2 = 0
        self.cr3 = 0
        self.ksp = 0
        self.idtr = 0
        self.paging = False
        self.waiting = False
        self.attention = False  # halted, waiting or an interrupt pending: the run loop must look
        self.halt_reason: str | None = None
        self.exit_code = 0
        self.steps = 0
        self.cycles = 0
        self.instructions = 0
        self.trap_counts: dict[int, int] = {}
        self.port_io_cycles = CostModel.port_io  # a physical device access is slow (Adams-Agesen 'in')
        self.icache: dict[int, Decoded] = {}
        self.base_icache = self.icache  # the plain decode cache (binary translation swaps in its own)
        # Hooks a VMM installs (none on bare metal); see engine/vmm.py.
        self.hypercall_hook: Callable[[CPU, int], None] | None = None
        self.trap_hook: Callable[[int, int, int, int, int], bool] | None = None
        # trap_hook is called first for every trap (vector, error, address, fault_pc, return_pc); True = handled.
        self.exit_names: frozenset[str] = frozenset()  # opcode names that exit in hardware-assisted guest mode
        self.exit_hook: Callable[[OpSpec, int, int, int, int], None] = _no_exit
        self.watch_pages: set[int] = set()  # physical pages whose stores call write_watch (BT, PT tracing)
        self.breakpoints: frozenset[int] = frozenset()
        self.breakpoint_pages: frozenset[int] = frozenset()
        self.irets = 0  # returns from trap executed (natively or emulated for a guest): "step out" counts them
        self.write_watch: Callable[[int], None] = _ignore_write
        self.delivery_fault_hook: Callable[[int, int], bool] | None = None  # (address, error) -> resolved?
        self.sensitive_hook: Callable[[OpSpec, int, int, int, int], None] | None = None  # after a SEN op ran
        self.decode_miss: Callable[[int, int], Decoded] = self._decode  # binary translation replaces this
        self._handlers: dict[int, Handler] = {
            spec.opcode: getattr(self, "op_" + spec.name.lower()) for spec in OPCODES
        }

    # ------------------------------------------------------------------ state helpers
    @property
    def halted(self) -> bool:
        """True once the machine has stopped for good."""
        return self.halt_reason is not None

    @property
    def control_registers(self) -> dict[str, int]:
        """Control registers by name, for display."""
        return {"cr0": self.cr0, "cr2": self.cr2, "cr3": self.cr3, "ksp": self.ksp, "idtr": self.idtr}

    def _interrupt_raised(self) -> None:
        self.attention = True

    def halt(self, reason: str, exit_code: int = 0) -> None:
        """Stop the machine; further steps do nothing."""
        self.halt_reason = reason
        self.exit_code = exit_code
        self.waiting = False
        self.attention = True
        events = self.sink.events
        if events is not None:
            events.append(MachineHalted(self.sink.step, reason, exit_code))

    # ------------------------------------------------------------------ the loop
    def run(self, max_steps: int) -> int:
        """Execute up to `max_steps` steps (an instruction, or an interrupt delivery); returns steps done.

        The hot path keeps the current fetch page in locals while it stays the TLB's most recent entry
        (so LRU order and hit counts are exactly what a per-fetch lookup would give), and re-reads
        everything an instruction of class privileged/sensitive/trap may change after it runs.
        """
        interrupts = self.interrupts
        timer = self.timer
        icache = self.icache
        mmu = self.mmu
        translate = mmu.translate
        sink = self.sink
        events = sink.events
        fast = events is None
        steps = self.steps
        start = steps
        limit = steps + max_steps
        cycles = fetch_hits = 0
        not_retired = 0  # steps that retired no instruction (faults, interrupt deliveries)
        fetch_vpn = fetch_key = -1  # fetch page cached in locals; -1 = none
        fetch_base = 0
        hit_increment = self._fetches_use_tlb()
        tick, countdown = timer.interval, timer.countdown
        # `attention` mirrors self.attention in a local: only special instructions, traps, interrupts
        # and the timer can set it, and the loop re-reads it after each of those.
        attention = self.attention
        try:
            while steps < limit:
                if attention:
                    if self.halt_reason is not None:
                        break
                    if events is not None:
                        sink.step = steps
                    if self.waiting and not interrupts.pending:
                        if not tick:
                            self.halt("hlt with interrupts enabled but no interrupt source: "
                                      "the machine sleeps forever")
                            break
                        cycles += countdown  # idle until the timer fires
                        countdown = tick
                        interrupts.raise_irq(Vector.TIMER, timer.name)
                    if interrupts.pending and self.flags & IF:
                        self.waiting = False
                        steps += 1
                        not_retired += 1
                        timer.countdown = countdown
                        self._deliver(interrupts.take(), 0, 0, self.pc, self.pc)
                        tick, countdown = timer.interval, timer.countdown
                        icache = self.icache
                        hit_increment = self._fetches_use_tlb()
                        fetch_vpn = -1
                        self.attention = bool(interrupts.pending) or self.halt_reason is not None
                        attention = self.attention
                        continue
                    if not interrupts.pending and not self.waiting:
                        self.attention = False
                    attention = self.attention
                pc = self.pc
                steps += 1
                try:
                    if pc >> 12 == fetch_vpn and mmu.last_key == fetch_key:
                        pa = fetch_base | (pc & 0xFFF)
                        fetch_hits += hit_increment
                    else:
                        # Recording never takes the branch above (fetch_vpn stays -1), so this is
                        # the one place a recorded step sets the step number its events carry.
                        sink.step = steps - 1
                        if self.breakpoints and pc in self.breakpoints and steps - 1 != start:
                            steps -= 1  # stop before a breakpoint (but never on the step we started at)
                            break
                        if pc & 7:
                            raise Fault(Vector.ALIGNMENT, 0, pc)
                        pa = translate(pc, FETCH, self.ring == 3) if self.paging else pc
                        if mmu.phys_limit and not self.paging:
                            pa = mmu.guest_physical(pa)
                        if fast and pc >> 12 not in self.breakpoint_pages:
                            fetch_vpn, fetch_base, fetch_key = pc >> 12, pa & PTE_FRAME_MASK, mmu.last_key
                    try:
                        handler, a, b, imm, op_cycles, special, spec = icache[pa]
                    except KeyError:  # first fetch of this instruction: decode (or translate) and cache it
                        handler, a, b, imm, op_cycles, special, spec = self.decode_miss(pa, pc)
                    if events is not None:
                        events.append(InstructionExecuted(steps - 1, pc, format_instruction(spec, a, b, imm),
                                                          self.ring, spec.klass.value))
                    self.pc = pc + 8  # INSTRUCTION_SIZE, as a constant: this line runs for every instruction
                    if special:
                        timer.countdown = countdown
                        fetch_vpn = -1
                        if self.exit_names and spec.name in self.exit_names:
                            self.exit_hook(spec, a, b, imm, pc)  # hardware-assisted VM: this op exits
                        elif special == PRIVILEGED and self.ring:
                            raise Fault(Vector.PRIVILEGED, 0, pc)
                        else:
                            handler(a, b, imm)
                            if self.sensitive_hook is not None and spec.klass is InstrClass.SENSITIVE:
                                self.sensitive_hook(spec, a, b, imm, pc)
                        tick, countdown = timer.interval, timer.countdown
                        icache = self.icache
                        hit_increment = self._fetches_use_tlb()
                        attention = self.attention
                    else:
                        handler(a, b, imm)
                    cycles += op_cycles
                    if tick:
                        countdown -= 1
                        if countdown <= 0:
                            countdown = tick
                            interrupts.raise_irq(Vector.TIMER, timer.name)
                            attention = True
                except Fault as fault:
                    self.pc = pc
                    fetch_vpn = -1
                    not_retired += 1
                    if fault.vector == Vector.PAGE_FAULT:
                        self.cr2 = fault.address
                    timer.countdown = countdown  # a VMM handling the fault may emulate and tick the timer
                    self._deliver(fault.vector, fault.error_code, fault.address, pc, pc)
                    # A VMM handling the trap may have emulated anything: re-read what the loop caches.
                    tick, countdown = timer.interval, timer.countdown
                    icache = self.icache
                    hit_increment = self._fetches_use_tlb()
                    attention = self.attention
                except BusError as error:
                    self.pc = pc
                    not_retired += 1
                    self.halt(f"bus error: {error}", 1)
                    attention = True
        finally:
            timer.countdown = countdown
            self.steps = steps
            self.instructions += steps - start - not_retired
            self.cycles += cycles
            if fetch_hits:
                mmu.counters["tlb_hits"] += fetch_hits
        return steps - start

    def _fetches_use_tlb(self) -> int:
        """1 if instruction fetches are TLB lookups (paging on, or guest-physical under nested paging)."""
        return 1 if self.paging or (self.mmu.phys_limit and self.mmu.nested is not None) else 0

    def _decode(self, pa: int, pc: int) -> Decoded:
        decoded = self.decode_at(pa, pc)
        self.icache[pa] = decoded
        return decoded

    def decode_at(self, pa: int, pc: int) -> Decoded:
        """Decode the instruction at physical `pa` (fetched for virtual `pc`) without caching it."""
        if pa & 7:
            raise Fault(Vector.ALIGNMENT, 0, pc)
        if pa + INSTRUCTION_SIZE > self.mem_size:
            raise BusError(f"instruction fetch at {pa:#x} is outside physical memory ({self.mem_size:#x} bytes)")
        mem = self.mem
        spec = OPCODE_BY_NUMBER.get(mem[pa])
        fields = mem[pa + 1]
        a, b = fields & 0xF, fields >> 4
        imm = int.from_bytes(mem[pa + 4:pa + 8], "little")
        if spec is None or mem[pa + 2] or mem[pa + 3] or not _operands_valid(spec, a, b, imm):
            raise Fault(Vector.INVALID_OPCODE, 0, pc)
        special = PRIVILEGED if spec.klass is InstrClass.PRIVILEGED else (
            SPECIAL if spec.klass is InstrClass.SENSITIVE or spec.name in _TRAPPING else PLAIN)
        return (self._handlers[spec.opcode], a, b, imm, spec.cycles, special, spec)

    # ------------------------------------------------------------------ traps
    def _deliver(self, vector: int, error_code: int, address: int, fault_pc: int, return_pc: int) -> None:
        """Deliver a trap through the trap table (see docs/isa.md, Traps and interrupts)."""
        if self.trap_hook is not None and self.trap_hook(vector, error_code, address, fault_pc, return_pc):
            return  # a VMM took this trap
        from_ring = self.ring
        self.trap_counts[vector] = self.trap_counts.get(vector, 0) + 1
        self.cycles += TRAP_DELIVERY_CYCLES
        cause = VECTOR_DESCRIPTIONS.get(vector, f"vector {vector}")
        for _attempt in range(4):  # a VMM may resolve a fault hit while delivering (e.g. a shadow miss)
            try:
                return self._deliver_once(vector, error_code, address, fault_pc, return_pc, from_ring, cause)
            except Fault as problem:
                self.ring = from_ring
                if not (problem.vector == Vector.PAGE_FAULT and self.delivery_fault_hook is not None
                        and self.delivery_fault_hook(problem.address, problem.error_code)):
                    detail = (f"{VECTOR_DESCRIPTIONS.get(problem.vector, problem.vector)} at {problem.address:#x}"
                              " while delivering a trap")
                    self.halt(f"triple fault: {detail}", 3)
                    return
        self.halt("triple fault: repeated faults while delivering a trap", 3)

    def _deliver_once(self, vector: int, error_code: int, address: int, fault_pc: int, return_pc: int,
                      from_ring: int, cause: str) -> None:
        try:
            self.ring = 0
            handler = self._load_word(self.idtr + 4 * vector, supervisor=True)
            if handler == 0:
                raise _TripleFault(f"no handler for {cause} (vector {vector}) in the trap table at {self.idtr:#x}")
            old_sp = self.regs[SP]
            sp = old_sp if from_ring == 0 else self.ksp
            frame = (error_code, vector, return_pc, self.flags | (from_ring << FRAME_RING_SHIFT), old_sp)
            base = (sp - 4 * TRAP_FRAME_WORDS) & WORD_MASK
            for i, word in enumerate(frame):
                self._store_word(base + 4 * i, word, supervisor=True)
        except (BusError, _TripleFault) as problem:
            self.ring = from_ring
            self.halt(f"triple fault: {problem}", 3)
            return
        self.regs[SP] = base
        self.flags &= ~IF
        self.pc = handler
        events = self.sink.events
        if events is not None:
            events.append(TrapTaken(self.sink.step, vector, cause, from_ring, 0, fault_pc, return_pc, handler,
                                    error_code, address))

    # ------------------------------------------------------------------ memory access
    def _translate(self, va: int, access: int, supervisor: bool) -> int:
        if self.paging:
            pa = self.mmu.translate(va, access, self.ring == 3 and not supervisor)
        else:
            pa = self.mmu.guest_physical(va, access) if self.mmu.phys_limit else va
        if pa + 1 > self.mem_size:
            raise BusError(f"physical address {pa:#x} is outside installed memory ({self.mem_size:#x} bytes)")
        return pa

    def _load_word(self, va: int, supervisor: bool = False) -> int:
        if va & 3:
            raise Fault(Vector.ALIGNMENT, 0, va)
        pa = self._translate(va, READ, supervisor)
        value = self.mem32[pa >> 2]
        events = self.sink.events
        if events is not None:
            events.append(MemoryAccess(self.sink.step, va, pa, 4, value, False))
        return int(value)

    def _store_word(self, va: int, value: int, supervisor: bool = False) -> None:
        if va & 3:
            raise Fault(Vector.ALIGNMENT, 0, va)
        pa = self._translate(va, WRITE, supervisor)
        self.mem32[pa >> 2] = value & WORD_MASK
        self.icache.pop(pa & -8, None)
        if self.watch_pages and pa >> 12 in self.watch_pages:
            self.write_watch(pa)
        events = self.sink.events
        if events is not None:
            events.append(MemoryAccess(self.sink.step, va, pa, 4, value & WORD_MASK, True))

    def _load_byte(self, va: int) -> int:
        pa = self._translate(va, READ, False)
        value = self.mem[pa]
        events = self.sink.events
        if events is not None:
            events.append(MemoryAccess(self.sink.step, va, pa, 1, value, False))
        return value

    def _store_byte(self, va: int, value: int) -> None:
        pa = self._translate(va, WRITE, False)
        self.mem[pa] = value & 0xFF
        self.icache.pop(pa & -8, None)
        if self.watch_pages and pa >> 12 in self.watch_pages:
            self.write_watch(pa)
        events = self.sink.events
        if events is not None:
            events.append(MemoryAccess(self.sink.step, va, pa, 1, value & 0xFF, True))

    def _push(self, value: int) -> None:
        sp = (self.regs[SP] - 4) & WORD_MASK
        self._store_word(sp, value)
        self.regs[SP] = sp

    def _pop(self) -> int:
        sp = self.regs[SP]
        value = self._load_word(sp)
        self.regs[SP] = (sp + 4) & WORD_MASK
        return value

    # ------------------------------------------------------------------ flag helpers
    def _logic(self, a: int, result: int) -> None:
        result &= WORD_MASK
        flags = self.flags & NOT_ARITH
        if result == 0:
            flags |= Z
        elif result & SIGN:
            flags |= N
        self.flags = flags
        self.regs[a] = result

    def _add(self, x: int, y: int) -> int:
        total = x + y
        result = total & WORD_MASK
        # Branch-free Z, N, C, V (bits 0-3), keeping IF: this is the hottest code in the engine.
        self.flags = ((self.flags & IF) | (result == 0) | ((result >> 31) << 1) | ((total >> 32) << 2)
                      | (((~(x ^ y) & (x ^ result)) >> 31 & 1) << 3))
        return result

    def _sub(self, x: int, y: int) -> int:
        result = (x - y) & WORD_MASK
        self.flags = ((self.flags & IF) | (result == 0) | ((result >> 31) << 1) | ((x < y) << 2)
                      | ((((x ^ y) & (x ^ result)) >> 31 & 1) << 3))
        return result

    # ------------------------------------------------------------------ instructions
    # Handlers take the decoded (a, b, imm); self.pc already points at the next instruction.
    def op_nop(self, a: int, b: int, imm: int) -> None:
        pass

    def op_mov(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self.regs[b]

    def op_movi(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = imm

    def op_ld(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._load_word((self.regs[b] + imm) & WORD_MASK)

    def op_st(self, a: int, b: int, imm: int) -> None:
        self._store_word((self.regs[a] + imm) & WORD_MASK, self.regs[b])

    def op_ldb(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._load_byte((self.regs[b] + imm) & WORD_MASK)

    def op_stb(self, a: int, b: int, imm: int) -> None:
        self._store_byte((self.regs[a] + imm) & WORD_MASK, self.regs[b])

    def op_push(self, a: int, b: int, imm: int) -> None:
        self._push(self.regs[a])

    def op_pushi(self, a: int, b: int, imm: int) -> None:
        self._push(imm)

    def op_pop(self, a: int, b: int, imm: int) -> None:
        value = self._pop()
        self.regs[a] = value

    def op_lea(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = (self.regs[b] + imm) & WORD_MASK

    def op_add(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._add(self.regs[a], self.regs[b])

    def op_addi(self, a: int, b: int, imm: int) -> None:
        regs = self.regs
        x = regs[a]
        total = x + imm
        regs[a] = result = total & WORD_MASK
        self.flags = ((self.flags & IF) | (result == 0) | ((result >> 31) << 1) | ((total >> 32) << 2)
                      | (((~(x ^ imm) & (x ^ result)) >> 31 & 1) << 3))

    def op_sub(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._sub(self.regs[a], self.regs[b])

    def op_subi(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._sub(self.regs[a], imm)

    def op_and(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] & self.regs[b])

    def op_andi(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] & imm)

    def op_or(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] | self.regs[b])

    def op_ori(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] | imm)

    def op_xor(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] ^ self.regs[b])

    def op_xori(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] ^ imm)

    def op_shl(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] << (self.regs[b] & 31))

    def op_shli(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] << (imm & 31))

    def op_shr(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] >> (self.regs[b] & 31))

    def op_shri(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] >> (imm & 31))

    def op_sar(self, a: int, b: int, imm: int) -> None:
        self._logic(a, _signed(self.regs[a]) >> (self.regs[b] & 31))

    def op_sari(self, a: int, b: int, imm: int) -> None:
        self._logic(a, _signed(self.regs[a]) >> (imm & 31))

    def op_mul(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] * self.regs[b])

    def op_muli(self, a: int, b: int, imm: int) -> None:
        self._logic(a, self.regs[a] * imm)

    def op_div(self, a: int, b: int, imm: int) -> None:
        self._divide(a, self.regs[b], remainder=False)

    def op_divi(self, a: int, b: int, imm: int) -> None:
        self._divide(a, imm, remainder=False)

    def op_mod(self, a: int, b: int, imm: int) -> None:
        self._divide(a, self.regs[b], remainder=True)

    def op_modi(self, a: int, b: int, imm: int) -> None:
        self._divide(a, imm, remainder=True)

    def _divide(self, a: int, divisor: int, *, remainder: bool) -> None:
        if divisor == 0:
            raise Fault(Vector.DIVIDE)
        x = self.regs[a]
        self._logic(a, x % divisor if remainder else x // divisor)

    def op_not(self, a: int, b: int, imm: int) -> None:
        self._logic(a, ~self.regs[a])

    def op_neg(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self._sub(0, self.regs[a])

    def op_cmp(self, a: int, b: int, imm: int) -> None:
        self._sub(self.regs[a], self.regs[b])

    def op_cmpi(self, a: int, b: int, imm: int) -> None:
        x = self.regs[a]
        result = (x - imm) & WORD_MASK
        self.flags = ((self.flags & IF) | (result == 0) | ((result >> 31) << 1) | ((x < imm) << 2)
                      | ((((x ^ imm) & (x ^ result)) >> 31 & 1) << 3))

    def op_test(self, a: int, b: int, imm: int) -> None:
        saved = self.regs[a]
        self._logic(a, saved & self.regs[b])
        self.regs[a] = saved

    def op_testi(self, a: int, b: int, imm: int) -> None:
        saved = self.regs[a]
        self._logic(a, saved & imm)
        self.regs[a] = saved

    def op_jmp(self, a: int, b: int, imm: int) -> None:
        self.pc = imm

    def op_jmpr(self, a: int, b: int, imm: int) -> None:
        self.pc = self.regs[a]

    def op_jz(self, a: int, b: int, imm: int) -> None:
        if self.flags & Z:
            self.pc = imm

    def op_jnz(self, a: int, b: int, imm: int) -> None:
        if not self.flags & Z:
            self.pc = imm

    def op_jl(self, a: int, b: int, imm: int) -> None:
        if bool(self.flags & N) != bool(self.flags & V):
            self.pc = imm

    def op_jge(self, a: int, b: int, imm: int) -> None:
        if bool(self.flags & N) == bool(self.flags & V):
            self.pc = imm

    def op_jle(self, a: int, b: int, imm: int) -> None:
        if self.flags & Z or bool(self.flags & N) != bool(self.flags & V):
            self.pc = imm

    def op_jg(self, a: int, b: int, imm: int) -> None:
        if not self.flags & Z and bool(self.flags & N) == bool(self.flags & V):
            self.pc = imm

    def op_jb(self, a: int, b: int, imm: int) -> None:
        if self.flags & C:
            self.pc = imm

    def op_jae(self, a: int, b: int, imm: int) -> None:
        if not self.flags & C:
            self.pc = imm

    def op_call(self, a: int, b: int, imm: int) -> None:
        self._push(self.pc)
        self.pc = imm

    def op_callr(self, a: int, b: int, imm: int) -> None:
        target = self.regs[a]
        self._push(self.pc)
        self.pc = target

    def op_ret(self, a: int, b: int, imm: int) -> None:
        self.pc = self._pop()

    def op_syscall(self, a: int, b: int, imm: int) -> None:
        self._deliver(Vector.SYSCALL, 0, 0, self.pc - INSTRUCTION_SIZE, self.pc)

    def op_brk(self, a: int, b: int, imm: int) -> None:
        self._deliver(Vector.BREAKPOINT, 0, 0, self.pc - INSTRUCTION_SIZE, self.pc)

    def op_hypercall(self, a: int, b: int, imm: int) -> None:
        if self.hypercall_hook is None:  # bare metal: there is no hypervisor to call
            raise Fault(Vector.INVALID_OPCODE, 0, self.pc - INSTRUCTION_SIZE)
        self.hypercall_hook(self, imm)

    def op_pushf(self, a: int, b: int, imm: int) -> None:
        self._push(self.flags & FLAGS_WRITABLE)

    def op_popf(self, a: int, b: int, imm: int) -> None:
        value = self._pop()
        # Intel SDM POPF: outside ring 0, IF is silently left unchanged. No fault: the x86 hole.
        writable = FLAGS_WRITABLE if self.ring == 0 else ARITH_FLAGS
        self.flags = (self.flags & ~writable) | (value & writable)

    def op_smsw(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self.ring | (MSW_PG if self.paging else 0) | (MSW_IF if self.flags & IF else 0)

    def op_sidt(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self.idtr

    def op_cli(self, a: int, b: int, imm: int) -> None:
        self.flags &= ~IF

    def op_sti(self, a: int, b: int, imm: int) -> None:
        self.flags |= IF

    def op_hlt(self, a: int, b: int, imm: int) -> None:
        if self.flags & IF:
            self.waiting = True
            self.attention = True
        else:
            self.halt("hlt with interrupts disabled", 0)

    def op_in(self, a: int, b: int, imm: int) -> None:
        self.cycles += self.port_io_cycles
        self.regs[a] = self.ports.read(imm)

    def op_out(self, a: int, b: int, imm: int) -> None:
        value = self.regs[b]
        self.cycles += self.port_io_cycles
        self.ports.write(imm, value)
        if imm == PORT_POWER:
            self.halt("power off", value)

    def op_movcr(self, a: int, b: int, imm: int) -> None:
        self.write_cr(imm, self.regs[b])

    def op_movrc(self, a: int, b: int, imm: int) -> None:
        self.regs[a] = self.read_cr(imm)

    def op_tlbflush(self, a: int, b: int, imm: int) -> None:
        self.mmu.flush_all("all")

    def op_invlpg(self, a: int, b: int, imm: int) -> None:
        self.mmu.flush_page((self.regs[a] + imm) & WORD_MASK)

    def set_breakpoints(self, addresses: frozenset[int]) -> None:
        """Virtual pcs before which `run` stops (checked only on pages that hold one: free elsewhere)."""
        self.breakpoints = frozenset(addresses)
        self.breakpoint_pages = frozenset(address >> 12 for address in self.breakpoints)

    def op_iret(self, a: int, b: int, imm: int) -> None:
        sp = self.regs[SP]
        error, vector, pc, flags_ring, old_sp = (
            self._load_word((sp + 4 * i) & WORD_MASK, supervisor=True) for i in range(TRAP_FRAME_WORDS))
        del error, vector  # popped and discarded, like x86's error code
        to_ring = (flags_ring >> FRAME_RING_SHIFT) & 3
        self.irets += 1
        self.flags = flags_ring & FLAGS_WRITABLE
        self.ring = to_ring
        self.regs[SP] = old_sp
        self.pc = pc
        events = self.sink.events
        if events is not None:
            events.append(TrapReturn(self.sink.step, 0, to_ring, pc))

    def op_lidt(self, a: int, b: int, imm: int) -> None:
        self._record_cr("idtr", self.idtr, self.regs[a])
        self.idtr = self.regs[a]

    # ------------------------------------------------------------------ control registers
    def read_cr(self, number: int) -> int:
        """Value of control register `number` (see engine.isa.CR)."""
        return {CR.CR0: self.cr0, CR.CR2: self.cr2, CR.CR3: self.cr3, CR.KSP: self.ksp}[CR(number)]

    def write_cr(self, number: int, value: int) -> None:
        """Write a control register with its side effects (paging on/off, address-space switch)."""
        register = CR(number)
        self._record_cr(CR_NAME_OF[register], self.read_cr(register), value)
        if register is CR.CR0:
            was_paging = self.paging
            self.cr0 = value
            self.paging = bool(value & CR0_PG)
            if was_paging != self.paging:
                self.mmu.flush_all("cr0")
        elif register is CR.CR2:
            self.cr2 = value
        elif register is CR.CR3:
            self.cr3 = value
            self.mmu.load_cr3(value)
        else:
            self.ksp = value

    def _record_cr(self, name: str, old: int, new: int) -> None:
        events = self.sink.events
        if events is not None:
            events.append(ControlRegisterWrite(self.sink.step, name, old, new))

    def state_dict(self) -> dict[str, Any]:
        """Architectural registers as plain values (for snapshots and display)."""
        return {"regs": self.regs[:NUM_REGS], "pc": self.pc, "flags": self.flags, "ring": self.ring,
                **self.control_registers}


# Innocuous instructions that still leave through the trap table (they change ring and pc).
_TRAPPING = frozenset({"SYSCALL", "BRK", "HYPERCALL"})


def _no_exit(spec: OpSpec, a: int, b: int, imm: int, pc: int) -> None:
    raise AssertionError("exit_names set without an exit_hook")


def _ignore_write(pa: int) -> None:
    pass


class _TripleFault(Exception):
    pass


def _signed(value: int) -> int:
    return value - 0x1_0000_0000 if value & SIGN else value


def _operands_valid(spec: OpSpec, a: int, b: int, imm: int) -> bool:
    for field in _REG_FIELDS[spec.form]:
        if field == "a" and a >= NUM_REGS:
            return False
        if field == "b" and b >= NUM_REGS:
            return False
        if field == "base_a" and a >= NUM_REGS and a != NO_BASE:
            return False
        if field == "base_b" and b >= NUM_REGS and b != NO_BASE:
            return False
    return spec.form not in (Form.CR_WRITE, Form.CR_READ) or imm in VALID_CRS
