"""`vizvm`, `vizvm lesson NAME` and `vizvm run PROGRAM`: build the machine, then the app, and run it."""

from __future__ import annotations

import argparse
import sys

from engine.machine import Machine


def launch_app(args: argparse.Namespace) -> int:
    """Run the app for the parsed command line; returns the process exit status.

    `vizvm` starts on the lesson list, `vizvm lesson NAME` opens that lesson over it, `vizvm run` on the
    machine screen; `--projector` starts any of them in classroom mode.

    A missing file is reported on stderr before the app starts. Assembler errors open the app with
    the errors in a dialog (on the default machine), so the student can fix the file and load it again.
    """
    from vizvm.app import make_app

    program: str | None = getattr(args, "program", None)
    under_kernel = bool(getattr(args, "kernel", False))
    mode: str | None = getattr(args, "mode", None)  # `--mode MODE`: natively or under the VMM
    memory: str = getattr(args, "memory", None) or "relocation"  # `--memory`: how the VMM virtualizes memory
    if memory != "relocation" and mode in (None, "native"):
        sys.stderr.write("vizvm: --memory needs a VMM: add --mode trap, bt, pv or hw\n")
        return 2
    startup_error: tuple[str, str] | None = None
    machine: Machine | None = None
    title: str | None = None
    if program is not None:
        from engine.asm import AsmErrors
        from vizvm.screens.load import build_machine

        try:
            machine, title = build_machine(program, under_kernel, mode or "native", memory,
                                           getattr(args, "tlb", "hardware"), getattr(args, "vms", 1),
                                           getattr(args, "overcommit", None))
        except AsmErrors as errors:
            startup_error = (f"{program} does not assemble",
                             f"{errors}\n\nShowing the shipped kernel instead. Fix the file, then load it "
                             "with l.")
        except (OSError, ValueError) as error:
            sys.stderr.write(f"vizvm run: {error}\n")
            return 1
    command = getattr(args, "command", None)
    if command is None and mode is not None:  # `vizvm --mode MODE`: the default programs under that mode
        from vizvm.screens.load import build_machine

        try:
            machine, title = build_machine(None, True, mode, memory, getattr(args, "tlb", "hardware"))
        except ValueError as error:  # e.g. a software-managed TLB under --mode hw
            sys.stderr.write(f"vizvm: {error}\n")
            return 1
        command = "run"
    app = make_app(machine, title=title, startup_error=startup_error, home=command in (None, "lesson"),
                   lesson=getattr(args, "name", None) if command == "lesson" else None,
                   seed=getattr(args, "seed", None) if command == "lesson" else None,
                   projector=bool(getattr(args, "projector", False)))
    app.run()
    return int(app.return_code or 0)
