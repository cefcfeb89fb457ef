"""UI latency of the vizvm app at 160x50 (headless driver).

Measures:
  1. step latency: time from an `s` key press to the next repainted frame, median and p95, on the
     shipped kernel (goal: median under 16 ms, one frame);
  2. running flat out: screen updates per second and engine steps per second on a guest that never
     stops, against the engine's own headless speed on the same guest in the same run (goal: at least
     20 updates/s while keeping at least half the headless speed).

Frames are timed with App.post_display_hook (called after every frame the screen composes). The
headless driver skips only the final write of escape codes to a terminal.

    python3 benchmarks/ui_latency.py [--presses 200] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.asm import assemble  # noqa: E402
from engine.machine import Machine  # noqa: E402
from engine.programs import bare_machine, boot_kernel_machine  # noqa: E402
from vizvm.app import VizVMApp, make_app  # noqa: E402
from vizvm.scenarios import machine_screen  # noqa: E402

SIZE = (160, 50)
BUSY_LOOP = """
_start:
        mov r1, 0
loop:
        add r1, 1
        st [0x8000], r1
        ld r2, [0x8000]
        cmp r1, r2
        jmp loop
"""


def busy_machine() -> Machine:
    """A bare-metal guest that loops forever (loads, stores, compares, jumps)."""
    return bare_machine(assemble(BUSY_LOOP, "busy.s"))


def watch_frames(app: VizVMApp) -> list[float]:
    """Record the time of every frame the app draws."""
    frames: list[float] = []
    original = app.post_display_hook

    def hook() -> None:
        frames.append(perf_counter())
        original()

    app.post_display_hook = hook  # type: ignore[method-assign]
    return frames


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def step_latency(presses: int) -> list[float]:
    """Milliseconds from each `s` press to the next frame."""
    app = make_app(boot_kernel_machine())
    frames = watch_frames(app)
    latencies: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for _ in range(presses):
            started = perf_counter()
            await pilot.press("s")
            after = [t for t in frames if t >= started]
            if after:
                latencies.append((after[0] - started) * 1000)
    return latencies


async def running(seconds: float) -> tuple[float, float]:
    """(screen updates per second, engine steps per second) while running flat out."""
    app = make_app(busy_machine())
    frames = watch_frames(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = machine_screen(app)
        await pilot.pause()
        start_steps = screen.bridge.machine.steps
        first_frame = len(frames)
        started = perf_counter()
        screen.action_toggle_run()
        await asyncio.sleep(seconds)
        elapsed = perf_counter() - started
        steps = screen.bridge.machine.steps - start_steps
        drawn = len(frames) - first_frame
        screen.action_toggle_run()
        await pilot.pause()
    return drawn / elapsed, steps / elapsed


def headless_speed(seconds: float) -> float:
    """Steps per second of Machine.run on the same guest, no UI."""
    machine = busy_machine()
    steps, started = 0, perf_counter()
    while perf_counter() - started < seconds:
        steps += machine.run(50_000)
    return steps / (perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print a report; exit 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description="vizvm UI latency and run-mode throughput")
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    latencies = asyncio.run(step_latency(args.presses))
    updates, ui_rate = asyncio.run(running(args.seconds))
    engine_rate = headless_speed(args.seconds)
    median, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    ratio = ui_rate / engine_rate
    out = sys.stdout
    out.write(f"step key -> frame at {SIZE[0]}x{SIZE[1]}: median {median:.1f} ms, p95 {p95:.1f} ms "
              f"({len(latencies)} presses; goal: median < 16 ms)\n")
    out.write(f"running flat out: {updates:.1f} screen updates/s (goal >= 20), engine {ui_rate:,.0f} steps/s\n")
    out.write(f"engine headless on the same guest: {engine_rate:,.0f} steps/s; in the app: {ratio:.0%} "
              "(goal >= 50%)\n")
    ok = median < 16 and updates >= 20 and ratio >= 0.5
    out.write("all goals met\n" if ok else "GOAL MISSED\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
