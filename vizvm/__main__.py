"""The `vizvm` command line. Headless subcommands never import textual or rich."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from engine.isa import TLB_MANAGEMENT
from engine.vmm import MEMORY_MODES, MODES
from vizvm import __version__


def _version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        textual_version = version("textual")
    except PackageNotFoundError:  # pragma: no cover - textual is a hard dependency
        textual_version = "not installed"
    return f"vizvm {__version__} (textual {textual_version}, Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="vizvm",
        description="Step a simulated machine and watch traps, page walks and I/O. "
                    "With no command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    parser.add_argument("--projector", action="store_true",
                        help="classroom mode: fewer, larger panels, high contrast, key presses echoed (F5 toggles)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="open the machine screen with the program natively or under the VMM: trap "
                             "(trap-and-emulate), bt (binary translation), pv (paravirtualization), hw (hardware "
                             "assist); v switches in the app")
    parser.add_argument("--memory", choices=MEMORY_MODES, default=None,
                        help="with --mode: how the VMM virtualizes guest memory: relocation (default), shadow "
                             "(shadow page tables) or nested (two-dimensional walks)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    asm = sub.add_parser("asm", help="assemble a file and print its listing")
    asm.add_argument("file", help="assembly source (.s)")
    asm.add_argument("-D", "--define", action="append", default=[], metavar="NAME[=VALUE]",
                     help="define a name for .ifdef (e.g. -D PARAVIRT for the paravirtual kernel)")

    trace = sub.add_parser("trace", help="run headless and print the event stream")
    trace.add_argument("program", nargs="?", default=None,
                       help="a .s file (bare metal unless --kernel) or a shipped sample name "
                            "(runs under the shipped kernel); default: the kernel with hello and count")
    trace.add_argument("--steps", type=int, default=10_000, help="maximum steps to run (default 10000)")
    trace.add_argument("--json", action="store_true", help="print JSON Lines (see docs/trace.md)")
    trace.add_argument("--kernel", action="store_true", help="run the .s file as a user process of the kernel")
    trace.add_argument("--kinds", default=None,
                       help="comma-separated event kinds to print (default: all), e.g. trap,walk,io")
    trace.add_argument("--seed", type=int, default=0, help="seed for the engine's random choices")
    trace.add_argument("--mode", choices=MODES, default="native",
                       help="run natively or under the VMM: trap (trap-and-emulate), bt (binary translation), "
                            "pv (paravirtualization), hw (hardware assist)")

    compare = sub.add_parser("compare", help="run a program natively and under each VMM mode, side by side")
    compare.add_argument("program", nargs="?", default=None, help="as for 'trace' (default: the kernel with hello "
                                                                  "and count)")
    compare.add_argument("--modes", default=",".join(MODES), help=f"comma-separated (default {','.join(MODES)})")
    compare.add_argument("--kernel", action="store_true", help="run the .s file as a user process of the kernel")
    compare.add_argument("--steps", type=int, default=5_000_000, help="maximum steps per mode (default 5000000)")
    for sub_parser in (trace, compare):
        sub_parser.add_argument("--memory", choices=MEMORY_MODES, default="relocation",
                                help="how the VMM virtualizes guest memory: relocation (one bounded region, "
                                     "the default), shadow (shadow page tables) or nested (two-dimensional walks)")

    lessons = sub.add_parser("lessons", help="list the shipped lessons, or check lessons headless")
    lessons.add_argument("action", nargs="?", choices=["list", "check"], default="list",
                         help="'list' (default) or 'check' (validate and run every step, checking its expectations)")
    lessons.add_argument("files", nargs="*", help="lesson files to check (default: every shipped lesson)")

    lesson = sub.add_parser("lesson", help="open a lesson in the player (or --solve to print its answers)")
    lesson.add_argument("name", help="lesson name, number or file (see 'vizvm lessons')")
    lesson.add_argument("--seed", type=int, default=None, help="seed for generated questions (a new problem)")
    lesson.add_argument("--solve", action="store_true", help="print every question with its answer and exit")

    serve = sub.add_parser("serve", help="serve the app in a web browser on this machine (textual-serve)")
    serve.add_argument("--port", type=int, default=8000, help="port on localhost (default 8000)")

    run = sub.add_parser("run", help="open the app on a program")
    run.add_argument("program", help="a .s file or a shipped sample name")
    run.add_argument("--kernel", action="store_true", help="run the .s file as a user process of the kernel")
    run.add_argument("--mode", choices=MODES, default=argparse.SUPPRESS,
                     help="run it natively (default) or under the VMM: trap, bt, pv or hw")
    run.add_argument("--memory", choices=MEMORY_MODES, default=argparse.SUPPRESS,
                     help="with --mode: relocation (default), shadow (shadow page tables) or nested "
                          "(two-dimensional walks, drawn as a grid in the memory mapper)")
    for sub_parser in (trace, compare, run):
        sub_parser.add_argument("--tlb", choices=TLB_MANAGEMENT, default="hardware",
                                help="who fills the TLB: hardware (the MMU walks the page tables, the default) or "
                                     "software (a miss traps to the kernel's handler, which uses tlbwr; "
                                     "not with --mode hw)")
    for sub_parser in (trace, run):
        sub_parser.add_argument("--vms", type=int, default=1, metavar="N",
                                help="with --mode: run N identical VMs on one host (1-8, default 1)")
        sub_parser.add_argument("--overcommit", type=int, default=None, metavar="FRAMES",
                                help="with --mode trap, pv or hw: the VMs share a pool of FRAMES machine frames "
                                     "(nested paging; frames on first touch, page sharing, ballooning)")
    for opens_app in (lesson, run, serve):  # also accepted after the command
        opens_app.add_argument("--projector", action="store_true", default=argparse.SUPPRESS,
                               help="classroom mode (as before the command)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vizvm` console script."""
    args = build_parser().parse_args(argv)
    if args.command in ("asm", "trace", "compare", "lessons") and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `vizvm trace | head` ends quietly, like any CLI tool
    if args.command == "asm":
        from vizvm.cli_asm import run_asm

        return run_asm(args.file, sys.stdout, args.define)
    if args.command == "trace":
        from vizvm.cli_trace import run_trace

        return run_trace(args, sys.stdout)
    if args.command == "compare":
        from vizvm.cli_compare import run_compare

        return run_compare(args, sys.stdout)
    if args.command == "lessons":
        from vizvm.cli_lessons import run_lessons

        return run_lessons(args, sys.stdout)
    if args.command == "lesson" and args.solve:
        from vizvm.cli_lessons import solve_lesson

        return solve_lesson(args.name, args.seed, sys.stdout)
    if args.command == "serve":
        from vizvm.serve import run_serve

        return run_serve(args)
    from vizvm.launch import launch_app

    return launch_app(args)


if __name__ == "__main__":
    sys.exit(main())
