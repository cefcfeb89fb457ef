"""Saving and loading machine snapshots as versioned files that bad input cannot crash.

Layout: 8-byte magic ``VIZVMSNP``, 2-byte little-endian format version, 4-byte CRC-32 of the payload,
then the payload: zlib-compressed UTF-8 JSON. Any problem raises SnapshotFileError with the reason.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from engine.isa import PAGE_SIZE
from engine.machine import MachineConfig, MachineState
from engine.program import Program

MAGIC = b"VIZVMSNP"
FORMAT_VERSION = 1


class SnapshotFileError(ValueError):
    """A snapshot file is missing, foreign, corrupted or from an incompatible version."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _program_to_json(program: Program) -> dict[str, Any]:
    return {"name": program.name, "origin": program.origin, "image": _b64(program.image),
            "entry": program.entry, "symbols": program.symbols,
            "labels": {str(k): v for k, v in program.labels.items()},
            "source_lines": {str(k): v for k, v in program.source_lines.items()}, "source": program.source,
            "code": sorted(program.code)}


def _program_from_json(data: dict[str, Any]) -> Program:
    return Program(str(data["name"]), int(data["origin"]), _unb64(data["image"]), int(data["entry"]),
                   {str(k): int(v) for k, v in data["symbols"].items()},
                   {int(k): str(v) for k, v in data["labels"].items()},
                   {int(k): int(v) for k, v in data["source_lines"].items()}, str(data["source"]),
                   frozenset(int(a) for a in data.get("code", ())))


def encode_state(state: MachineState) -> bytes:
    """The file bytes for `state`."""
    devices = dict(state.devices)
    devices["console_output"] = _b64(devices["console_output"])
    devices["console_input"] = _b64(devices["console_input"])
    version, internal, gauss = state.rng_state
    document = {
        "config": asdict(state.config), "memory": _b64(zlib.compress(b"".join(state.memory), 6)), "cpu": state.cpu,
        "tlb": state.tlb, "mmu": state.mmu, "devices": devices,
        "rng_state": [version, list(internal), gauss], "programs": [_program_to_json(p) for p in state.programs],
    }
    payload = zlib.compress(json.dumps(document, separators=(",", ":")).encode("utf-8"), 6)
    header = MAGIC + FORMAT_VERSION.to_bytes(2, "little") + zlib.crc32(payload).to_bytes(4, "little")
    return header + payload


def decode_state(data: bytes, source: str = "<bytes>") -> MachineState:
    """Parse file bytes back into a MachineState, or raise SnapshotFileError naming `source`."""
    if len(data) < len(MAGIC) + 6 or not data.startswith(MAGIC):
        raise SnapshotFileError(f"{source}: not a vizvm snapshot (missing {MAGIC.decode()} header)")
    version = int.from_bytes(data[8:10], "little")
    if version != FORMAT_VERSION:
        raise SnapshotFileError(f"{source}: snapshot format version {version}; this vizvm reads version "
                                f"{FORMAT_VERSION}")
    payload = data[14:]
    if zlib.crc32(payload) != int.from_bytes(data[10:14], "little"):
        raise SnapshotFileError(f"{source}: snapshot is corrupted (checksum mismatch)")
    try:
        document = json.loads(zlib.decompress(payload).decode("utf-8"))
        config_fields = {f.name for f in fields(MachineConfig)}
        if not set(document["config"]) <= config_fields:  # a field added since (tlb_managed) takes its default
            raise SnapshotFileError(f"{source}: snapshot configuration has unexpected fields")
        config = MachineConfig(**document["config"]).validate()
        cpu = dict(document["cpu"])
        cpu["regs"] = tuple(cpu["regs"])
        cpu["trap_counts"] = tuple(tuple(item) for item in cpu["trap_counts"])
        mmu = dict(document["mmu"])
        mmu["counters"] = tuple(tuple(item) for item in mmu["counters"])
        devices = dict(document["devices"])
        devices["console_output"] = _unb64(devices["console_output"])
        devices["console_input"] = _unb64(devices["console_input"])
        devices["pending"] = tuple(devices["pending"])
        devices["port_counters"] = tuple(tuple(item) for item in devices["port_counters"])
        version_, internal, gauss = document["rng_state"]
        raw = zlib.decompress(_unb64(document["memory"]))
        if len(raw) != config.memory_size:
            raise SnapshotFileError(f"{source}: memory image does not match the configured memory size")
        memory = tuple(raw[i:i + PAGE_SIZE] for i in range(0, len(raw), PAGE_SIZE))
        return MachineState(config, memory, cpu, tuple((int(k), int(v)) for k, v in document["tlb"]), mmu,
                            devices, (version_, tuple(internal), gauss),
                            tuple(_program_from_json(p) for p in document["programs"]))
    except SnapshotFileError:
        raise
    except (KeyError, TypeError, ValueError, zlib.error, UnicodeDecodeError) as error:
        raise SnapshotFileError(f"{source}: snapshot content is malformed ({error})") from None


def save_state(state: MachineState, path: str | Path) -> None:
    """Write `state` to `path`."""
    Path(path).write_bytes(encode_state(state))


def load_state(path: str | Path) -> MachineState:
    """Read a snapshot file; raises SnapshotFileError (never anything else) for a bad file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SnapshotFileError(f"{path}: cannot read snapshot ({error.strerror})") from None
    return decode_state(data, str(path))
