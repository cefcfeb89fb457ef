"""Engine speed: instructions per second with paging on/off and recording on/off, against py65.

Run: python3 benchmarks/engine_speed.py [--instructions N] [--repeat R]
Prints medians measured in this one run and their ratios (the machine is noisy: compare ratios, not
absolute numbers across runs). py65 is a bench-only dependency: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from engine.isa import OPCODE_BY_NAME, PTE_P, PTE_W, encode
from engine.machine import Machine
from engine.program import Program

ROOT, TABLE = 0x10000, 0x11000


def _ins(name: str, a: int = 0, b: int = 0, imm: int = 0) -> bytes:
    return encode(OPCODE_BY_NAME[name].opcode, a, b, imm)


def counting_machine(paging: bool, iterations: int) -> Machine:
    """`loop: add r0, 1; cmp r0, N; jnz loop` (3 instructions per iteration), optionally paged."""
    machine = Machine()
    setup = b""
    if paging:  # identity-map the first 1 MiB through a 2-level table
        machine.write_memory(ROOT, (TABLE | PTE_P | PTE_W).to_bytes(4, "little"))
        machine.write_memory(TABLE, b"".join(((i << 12) | PTE_P | PTE_W).to_bytes(4, "little")
                                             for i in range(256)))
        setup = _ins("MOVI", 1, 0, ROOT) + _ins("MOVCR", 0, 1, 3) + _ins("MOVI", 1, 0, 1) + _ins("MOVCR", 0, 1, 0)
    loop = len(setup) + 8
    code = setup + _ins("MOVI", 0, 0, 0) + _ins("ADDI", 0, 0, 1) + _ins("CMPI", 0, 0, iterations) + \
        _ins("JNZ", 0, 0, loop) + _ins("OUT", 0, 0, 0xF4)
    machine.load_bare(Program("count", 0, code, 0))
    return machine


def measure_interleaved(variants: dict[str, Callable[[int], int]], count: int, repeat: int) -> dict[str, float]:
    """Median instructions/s per variant, running the variants round-robin so drift hits all alike."""
    rates: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(repeat):
        for label, body in variants.items():
            start = time.perf_counter()
            executed = body(count)
            rates[label].append(executed / (time.perf_counter() - start))
    medians = {}
    for label, values in rates.items():
        medians[label] = statistics.median(values)
        print(f"{label:<44} {medians[label] / 1e6:7.3f} M instr/s   "
              f"(min {min(values) / 1e6:.3f}, max {max(values) / 1e6:.3f})")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instructions", type=int, default=1_500_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, repeat = args.instructions, args.repeat
    iterations = n // 3

    def engine_run(paging: bool) -> Callable[[int], int]:
        return lambda count: counting_machine(paging, iterations).run(count)

    def engine_recording(count: int) -> int:
        machine = counting_machine(True, iterations)
        steps = count // 10
        for _ in range(steps):
            machine.step()
        return steps

    variants: dict[str, Callable[[int], int]] = {
        "vizvm: paging on, recording off (run)": engine_run(True),
        "vizvm: paging off, recording off (run)": engine_run(False),
        "vizvm: paging on, recording on (step)": engine_recording,
    }
    try:
        from py65.devices.mpu6502 import MPU  # type: ignore[import-untyped]
    except ImportError:
        MPU = None
        print("py65 not installed (pip install -e '.[bench]'): no comparison")

    def py65_loop(count: int) -> int:
        mpu = MPU()
        # $0200: LDX #0; loop: INX; CPX #$FF; BNE loop; JMP $0200 -- the same 3-instruction counting loop
        for offset, byte in enumerate([0xA2, 0x00, 0xE8, 0xE0, 0xFF, 0xD0, 0xFB, 0x4C, 0x00, 0x02]):
            mpu.memory[0x200 + offset] = byte
        mpu.pc = 0x200
        step = mpu.step
        for _ in range(count):
            step()
        return count

    if MPU is not None:
        variants["py65 6502: step() counting loop"] = py65_loop
    medians = measure_interleaved(variants, n, repeat)
    if MPU is None:
        return
    py65 = medians.pop("py65 6502: step() counting loop")
    results = {label.split(": ", 1)[1].split(" (")[0]: rate for label, rate in medians.items()}
    print()
    for label, rate in results.items():
        print(f"ratio vizvm ({label}) / py65: {rate / py65:5.2f}x")
    recording_cost = results["paging on, recording on"] / results["paging on, recording off"]
    print(f"ratio recording on / off (paging on): {recording_cost:5.3f}x")


if __name__ == "__main__":
    main()
