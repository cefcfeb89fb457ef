"""Where vizvm finds its lessons and keeps per-user data. The only module that knows these paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def lessons_dir() -> Path:
    """Shipped lessons: inside the installed package, or the checkout's lessons/ in an editable install."""
    for candidate in (_PACKAGE / "lessons", _PACKAGE.parent / "lessons"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / "lessons"


def data_dir() -> Path:
    """Per-user data directory (progress and answers), following the platform's convention.

    VIZVM_DATA_DIR overrides it (tests use this to stay out of the real home directory).
    """
    override = os.environ.get("VIZVM_DATA_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "vizvm"


def find_lesson(name: str) -> Path:
    """A lesson by file path, file name, stem, or number prefix ('1', '01', '01-traps')."""
    path = Path(name)
    if path.is_file():
        return path
    directory = lessons_dir()
    files = sorted(directory.glob("*.toml"))
    for candidate in files:
        stem = candidate.stem
        number = stem.split("-", 1)[0]
        if name in (candidate.name, stem) or (name.isdigit() and number.isdigit() and int(name) == int(number)):
            return candidate
    matches = [c for c in files if name in c.stem]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(c.stem for c in files) or "(none)"
    raise FileNotFoundError(f"no lesson named {name!r}; lessons: {names}")
