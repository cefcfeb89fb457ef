"""Snapshot files round-trip exactly, and corrupted or foreign files give a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.machine import Machine
from engine.snapshot_file import SnapshotFileError, decode_state, encode_state, load_state, save_state
from tests.engine.test_determinism import machine_for


def test_round_trip_then_run_equals_run(tmp_path: Path) -> None:
    machine = machine_for(11)
    machine.run(150)
    save_state(machine.snapshot(), tmp_path / "m.vzs")
    machine.run(100)
    expected = machine.snapshot()
    other = Machine(machine.config)
    other.restore(load_state(tmp_path / "m.vzs"))
    other.run(100)
    assert other.snapshot() == expected


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SnapshotFileError, match="not a vizvm snapshot"):
        load_state(tmp_path / "x.txt")
    with pytest.raises(SnapshotFileError, match="cannot read"):
        load_state(tmp_path / "absent.vzs")


def test_newer_version_is_refused() -> None:
    data = bytearray(encode_state(machine_for(1).snapshot()))
    data[8] = 99
    with pytest.raises(SnapshotFileError, match="version 99"):
        decode_state(bytes(data))


@settings(max_examples=50, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255), truncate=st.booleans())
def test_corruption_never_crashes(position: int, value: int, truncate: bool) -> None:
    data = bytearray(encode_state(machine_for(2).snapshot()))
    if truncate:
        data = data[:position % len(data)]
    else:
        data[position % len(data)] ^= value or 1
    try:
        decode_state(bytes(data))
    except SnapshotFileError as error:
        assert str(error)
