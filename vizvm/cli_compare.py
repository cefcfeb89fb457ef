"""`vizvm compare`: one program natively and under each VMM mode, side by side (no textual)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from engine.systems import ModeResult, run_modes, supported_modes
from engine.vmm import MODE_TITLES, MODES
from vizvm.cli_trace import build_machine

ROWS = ("guest instructions", "steps", "traps", "exits to the VMM", "emulated", "reflected", "hypercalls",
        "bt_blocks", "bt_hits", "fidelity_violations", "page-table references", "hidden_faults", "pt_writes_traced",
        "cycles")
SOFT_TLB_ROWS = ("tlb_miss_traps", "tlbwr_emulated", "software_tlb_hits")  # with --tlb software
BAR_WIDTH = 24


def _value(result: ModeResult, row: str) -> int:
    if row == "steps":
        return result.steps
    if row == "page-table references":
        return result.counters.get("pte_reads", 0) + result.counters.get("host_pte_reads", 0)
    if row == "traps":
        return result.counters.get("traps", 0) + result.counters.get("reflected", 0)
    return result.figure(row)


def run_compare(args: argparse.Namespace, out: TextIO) -> int:
    """Print the comparison table; returns 0 (1 on bad input)."""
    from engine.asm import AsmErrors

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.modes == ",".join(MODES):  # the default: only the modes this TLB can run in
        modes = [m for m in modes if m in supported_modes(args.tlb)]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        print(f"vizvm compare: unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}",
              file=sys.stderr)
        return 1
    try:
        results = run_modes(modes, lambda mode: build_machine(args.program, under_kernel=args.kernel, mode=mode,
                                                              memory_mode=args.memory, tlb_managed=args.tlb),
                            args.steps)
    except AsmErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"vizvm compare: {error}", file=sys.stderr)
        return 1
    width = max(len(r) for r in ROWS) + 2  # (the software-TLB rows are shorter)
    column = 20
    out.write(" " * width + "".join(f"{MODE_TITLES[r.mode]:>{column}}" for r in results) + "\n")
    rows = ROWS + (SOFT_TLB_ROWS if args.tlb == "software" else ())
    for row in rows:
        out.write(f"{row:<{width}}" + "".join(f"{_value(r, row):>{column},}" for r in results) + "\n")
    out.write(f"{'stopped':<{width}}" + "".join(
        f"{('exit ' + str(r.view.exit_code)) if r.view.stopped else 'running':>{column}}" for r in results) + "\n")
    out.write(f"{'equivalent to native':<{width}}" + "".join(
        f"{'yes' if r.equivalent else 'NO':>{column}}" for r in results) + "\n")
    if any(r.mode == "pv" for r in results):
        out.write("(paravirtualization runs a different kernel build: only its console output and exit are compared)\n")
    out.write("\n")
    native = next((r for r in results if r.mode == "native"), None)
    top = max(_value(r, "cycles") for r in results) or 1
    out.write("cycles (cost model, engine/costs.py):\n")
    for r in results:
        cycles = _value(r, "cycles")
        ratio = f"  {cycles / _value(native, 'cycles'):.2f}x native" if native and _value(native, "cycles") else ""
        out.write(f"  {MODE_TITLES[r.mode]:<20} {'#' * max(1, round(BAR_WIDTH * cycles / top)):<{BAR_WIDTH}} "
                  f"{cycles:>12,}{ratio}\n")
    for r in results:
        if r.divergence:
            out.write(f"\n{MODE_TITLES[r.mode]} diverges from native: {r.divergence}\n")
    console = results[0].view.console
    out.write("\nguest console output (" + MODE_TITLES[results[0].mode] + "):\n" + console
              + ("" if console.endswith("\n") else "\n"))
    return 0
