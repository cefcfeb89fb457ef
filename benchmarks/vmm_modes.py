"""VMM modes: engine speed per mode on the shipped guest workload, and the cost model's ratios.

Run: python3 benchmarks/vmm_modes.py [--repeat R]
Everything is measured in this one run (the machine is noisy: compare ratios, not absolute numbers).
"""

from __future__ import annotations

import argparse
import statistics
import time

from engine.nanobench import table
from engine.systems import build_system, run_modes

MODES = ("native", "trap", "bt", "pv", "hw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    programs = ("count", "count", "hello")
    print("Guest workload: the shipped kernel running count, count and hello to completion.\n")
    print(f"{'mode':<10} {'host steps':>12} {'M steps/s':>10} {'vs native':>10}")
    native_rate = 0.0
    for mode in MODES:
        rates = []
        steps = 0
        for _ in range(args.repeat):
            try:
                system = build_system(mode, user_programs=programs)
            except Exception as error:  # noqa: BLE001 - e.g. the PV kernel build is missing
                print(f"{mode:<10} unavailable: {error}")
                break
            start = time.perf_counter()
            steps = system.run(10_000_000)
            rates.append(steps / (time.perf_counter() - start))
        if not rates:
            continue
        rate = statistics.median(rates)
        native_rate = native_rate or rate
        print(f"{mode:<10} {steps:>12,} {rate / 1e6:>10.3f} {rate / native_rate:>9.2f}x")
    print("\nCycle model on the same workload (engine/costs.py):")
    results = run_modes([m for m in MODES if m != "pv"], lambda mode: build_system(mode, user_programs=programs),
                        10_000_000)
    base = results[0].counters["cycles"]
    for result in results:
        cycles = result.counters["cycles"]
        print(f"  {result.mode:<8} {cycles:>12,} cycles  {cycles / base:6.2f}x native  "
              f"exits {result.figure('exits to the VMM'):>6,}  equivalent={result.equivalent}")
    print("\nNanobenchmarks, cycles per operation (Adams & Agesen 2006 ordering):")
    nano = table(repetitions=20)
    modes = list(next(iter(nano.values())))
    print(f"  {'':<10}" + "".join(f"{m:>10}" for m in modes))
    for name, row in nano.items():
        print(f"  {name:<10}" + "".join(f"{row[m]:>10.0f}" for m in modes))


if __name__ == "__main__":
    main()
