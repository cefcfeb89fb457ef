"""docs/isa.md documents every opcode of the table, with its class (the doc cannot drift)."""

from __future__ import annotations

from pathlib import Path

from engine.isa import OPCODES, VECTOR_DESCRIPTIONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "isa.md").read_text()


def test_every_opcode_is_documented_with_its_class() -> None:
    rows = {line.split("|")[2].strip(): line for line in DOC.splitlines() if line.startswith("| 0x")}
    for spec in OPCODES:
        assert spec.name in rows, f"{spec.name} missing from docs/isa.md"
        assert f"0x{spec.opcode:02x}" in rows[spec.name]
        assert spec.klass.value in rows[spec.name], f"{spec.name}: class not documented"


def test_every_trap_vector_is_documented() -> None:
    for vector in VECTOR_DESCRIPTIONS:
        assert f"| {int(vector)} |" in DOC, f"vector {int(vector)} missing from docs/isa.md"
