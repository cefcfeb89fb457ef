"""`vizvm trace`: run a program headless and print its event stream (text or JSON Lines).

Never imports textual or rich, so graders and scripts can use it anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from engine.isa import REGISTER_NAMES
from engine.machine import MachineConfig
from engine.program import Program
from engine.programs import DEFAULT_USER_PROGRAMS, sample_names
from engine.systems import System, build_system, guest_view
from engine.worlds import WorldTracker

TRACE_FORMAT_VERSION = 1


def build_machine(program: str | None, *, under_kernel: bool, seed: int = 0, mode: str = "native",
                  memory_mode: str = "relocation", tlb_managed: str = "hardware", vms: int = 1,
                  host_frames: int | None = None) -> System:
    """The system `vizvm trace`/`run`/`compare` mean by PROGRAM in `mode` (see `vizvm trace --help`).

    `vms` > 1 runs that many identical VMs (each the kernel with the program); `host_frames` overcommits
    them on a pool of that many machine frames (nested paging).
    """
    from engine.asm import assemble_file
    from engine.hostmem import OvercommitConfig

    config = MachineConfig(seed=seed, tlb_managed=tlb_managed).validate()
    if (vms != 1 or host_frames is not None) and mode == "native":
        raise ValueError("--vms and --overcommit need a VMM: add --mode trap, pv or hw")
    if not 1 <= vms <= 8:
        raise ValueError(f"--vms must be 1 to 8, got {vms}")
    if host_frames is not None and memory_mode == "relocation":
        memory_mode = "nested"  # overcommit remaps guest pages in the host's nested tables
    overcommit = OvercommitConfig(host_frames, seed=seed).validate() if host_frames is not None else None
    memory: dict[str, Any] = {"memory_mode": memory_mode} if mode != "native" else {}
    if overcommit is not None:
        memory["overcommit"] = overcommit
    path = Path(program) if program is not None else None
    if path is None or (not path.is_file() and program in sample_names()):
        programs: tuple[str | Program, ...] = DEFAULT_USER_PROGRAMS if program is None else (program,)
    elif not path.is_file():
        raise FileNotFoundError(f"{program}: no such file, and not a shipped sample "
                                f"(samples: {', '.join(sample_names())})")
    elif under_kernel:
        programs = (assemble_file(path),)
    elif vms > 1 or overcommit is not None:
        raise ValueError("several VMs each boot the kernel: add --kernel to run the .s file as its process")
    else:
        return build_system(mode, bare=assemble_file(path), config=config, **memory)
    if vms > 1 or overcommit is not None:
        memory["vms"] = [programs] * vms
    return build_system(mode, user_programs=programs, config=config, **memory)


def summary(machine: System, mode: str = "native") -> dict[str, Any]:
    """The final `summary` record: registers, counters, console output and why it stopped."""
    cpu = machine.cpu
    view = guest_view(machine)
    registers = {name: view.registers[i] for i, name in enumerate(REGISTER_NAMES)}
    control = dict(cpu.control_registers)
    if mode not in ("native", "hw"):  # a software VMM keeps the guest's control registers virtual
        vcpu = machine.current.vcpu  # type: ignore[union-attr]
        control.update(cr0=vcpu.cr0, cr2=vcpu.cr2, cr3=vcpu.cr3, ksp=vcpu.ksp, idtr=vcpu.idtr)
    registers.update(pc=view.pc, flags=view.flags, ring=view.ring, **control)
    return {
        "step": machine.steps, "kind": "summary", "format": TRACE_FORMAT_VERSION, "mode": mode,
        "halted": machine.halted, "halt_reason": machine.halt_reason, "exit_code": machine.exit_code,
        "registers": registers, "counters": machine.counters(), "console": machine.console_output,
    }


def run_trace(args: argparse.Namespace, out: TextIO) -> int:
    """Run the trace command; returns the process exit status."""
    from engine.asm import AsmErrors

    try:
        machine = build_machine(args.program, under_kernel=args.kernel, seed=args.seed, mode=args.mode,
                                memory_mode=args.memory, tlb_managed=args.tlb, vms=args.vms,
                                host_frames=args.overcommit)
    except AsmErrors as errors:
        print(errors, file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"vizvm trace: {error}", file=sys.stderr)
        return 1
    kinds = set(args.kinds.split(",")) if args.kinds else None
    worlds = WorldTracker(args.mode, machine.cpu.ring)
    for _ in range(max(args.steps, 0)):
        if machine.halted:
            break
        for event in machine.step().events:
            world = worlds.world_of(event)
            if kinds is not None and event.kind not in kinds:
                continue
            if args.json:
                record = event.to_dict()
                record["world"] = world
                out.write(json.dumps(record) + "\n")
            else:
                out.write(f"{event.step:>7}  {world:<12} {event.describe()}\n")
    final = summary(machine, args.mode)
    if args.json:
        out.write(json.dumps(final) + "\n")
    else:
        state = f"halted: {machine.halt_reason}" if machine.halted else "still running (raise --steps)"
        out.write(f"\n{machine.steps} steps, {state}\n")
        regs = "  ".join(f"{k}={v:#x}" for k, v in final["registers"].items())
        out.write(f"registers: {regs}\n")
        out.write("counters: " + ", ".join(f"{k}={v}" for k, v in final["counters"].items()) + "\n")
        vms = getattr(machine, "vms", ())
        consoles = ([(f" (vm{vm.vm_id}: {vm.stop_reason or 'running'})", vm.console_text) for vm in vms]
                    if len(vms) > 1 else [("", machine.console_output)])
        for whose, text in consoles:
            out.write(f"console output{whose}:\n" + text + ("" if text.endswith("\n") else "\n"))
    return 0
