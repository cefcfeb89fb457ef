"""Write screenshots/*.svg: the main screens of vizvm on the shipped kernel.

Each image comes from a scenario in vizvm/scenarios.py, the same functions the snapshot tests run, and
the app comes from the same make_app() the `vizvm` command uses. Run from the repository root:

    python3 scripts/make_screenshots.py [--out screenshots] [NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.programs import boot_kernel_machine  # noqa: E402
from vizvm.app import make_app  # noqa: E402
from vizvm.scenarios import SCENARIOS, no_blink  # noqa: E402

SHOTS: tuple[tuple[str, str, tuple[int, int], str | None], ...] = (
    ("boot", "boot", (160, 50), None),
    ("trap-taken", "trap-taken", (160, 50), None),
    ("page-walk", "page-walk", (160, 50), None),
    ("halted", "halted", (160, 50), None),
    ("help", "help", (160, 50), None),
    ("palette", "palette", (160, 50), None),
    ("trap-taken-100x30", "trap-taken", (100, 30), None),
    ("page-walk-projector-light", "page-walk", (160, 50), "vizvm-projector-light"),
    ("trap-syscall", "trap-syscall", (160, 50), None),
    ("bt-cache", "bt-cache", (160, 50), None),
    ("hw-exit", "hw-exit", (160, 50), None),
    ("popf-compare", "popf-compare", (160, 50), None),
    ("trap-syscall-100x30", "trap-syscall", (100, 30), None),
    ("nested-walk", "nested-walk", (160, 50), None),
    ("shadow-fill", "shadow-fill", (160, 50), None),
    ("host-frames", "host-frames", (160, 50), None),
    ("overcommit", "overcommit", (160, 50), None),
    ("shadow-fill-projector-dark", "shadow-fill", (160, 50), "vizvm-projector-dark"),
    ("nested-walk-projector-light", "nested-walk", (160, 50), "vizvm-projector-light"),
)
"""(file name, scenario, terminal size, theme)."""


async def shoot(name: str, scenario: str, size: tuple[int, int], theme: str | None, out: Path) -> Path:
    """Drive a fresh app to the scenario's state and save its SVG."""
    app = make_app(boot_kernel_machine())
    async with app.run_test(size=size) as pilot:
        if theme is not None:
            app.theme = theme
        await SCENARIOS[scenario](pilot)
        no_blink(app)
        await pilot.pause()
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))


def main(argv: list[str] | None = None) -> int:
    """Write every screenshot (or the named ones); prints each path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these screenshots")
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, scenario, size, theme in SHOTS:
        if args.names and name not in args.names:
            continue
        path = asyncio.run(shoot(name, scenario, size, theme, out))
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
