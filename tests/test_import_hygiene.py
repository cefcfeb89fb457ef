"""The engine and the headless CLI never load the UI libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["engine", "engine.machine", "engine.timetravel", "engine.programs",
                                    "vizvm.cli_trace", "vizvm.__main__"])
def test_headless_modules_do_not_import_textual_or_rich(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')); "
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} pulled in: {result.stdout.strip()}"


def test_engine_never_imports_the_app() -> None:
    code = "import sys, engine.machine, engine.timetravel; print(any(m.startswith('vizvm') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
