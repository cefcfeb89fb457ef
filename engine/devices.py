"""Bare-metal devices behind a small port-I/O dispatcher: console, deterministic timer, power control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from engine.events import InterruptRaised, PortIO
from engine.isa import Vector
from engine.mmu import Sink

PORT_CONSOLE_DATA = 0x10
PORT_CONSOLE_STATUS = 0x11
PORT_TIMER_INTERVAL = 0x20
PORT_TIMER_COUNTDOWN = 0x21
PORT_POWER = 0xF4
UNMAPPED_READ = 0xFFFF_FFFF


class Device(Protocol):
    """A device answers reads and writes on the ports it registered."""

    name: str

    def read(self, port: int) -> int: ...

    def write(self, port: int, value: int) -> None: ...


class Console:
    """Serial-like console: OUT prints a byte, IN reads scripted input."""

    name = "console"

    def __init__(self, interrupts: InterruptController, input_text: str = "") -> None:
        self.interrupts = interrupts
        self.output = bytearray()
        self.input = input_text.encode()
        self.input_pos = 0
        if self.input:
            interrupts.raise_irq(Vector.DEVICE, self.name)

    def read(self, port: int) -> int:
        if port == PORT_CONSOLE_STATUS:
            return 1 if self.input_pos < len(self.input) else 0
        if self.input_pos < len(self.input):
            value = self.input[self.input_pos]
            self.input_pos += 1
            return value
        return 0

    def write(self, port: int, value: int) -> None:
        if port == PORT_CONSOLE_DATA:
            self.output.append(value & 0xFF)

    @property
    def text(self) -> str:
        """Everything printed so far, decoded leniently."""
        return self.output.decode("utf-8", errors="replace")


class Timer:
    """Interrupts every `interval` executed instructions (0 = off). Never reads a clock."""

    name = "timer"

    def __init__(self, interrupts: InterruptController, interval: int = 0) -> None:
        self.interrupts = interrupts
        self.interval = interval
        self.countdown = interval

    def read(self, port: int) -> int:
        return self.interval if port == PORT_TIMER_INTERVAL else self.countdown

    def write(self, port: int, value: int) -> None:
        if port == PORT_TIMER_INTERVAL:
            self.interval = value
            self.countdown = value

    def tick(self, executed: int = 1) -> None:
        """Account for `executed` instructions; raise the timer line when the countdown reaches zero."""
        if self.interval:
            self.countdown -= executed
            if self.countdown <= 0:
                self.countdown = self.interval
                self.interrupts.raise_irq(Vector.TIMER, self.name)


class PowerControl:
    """Writing any value to the power port stops the machine with that exit code."""

    name = "power"

    def __init__(self) -> None:
        self.exit_code: int | None = None

    def read(self, port: int) -> int:
        return 0

    def write(self, port: int, value: int) -> None:
        self.exit_code = value


def _nothing() -> None:
    pass


class InterruptController:
    """Pending interrupt lines, delivered lowest vector first when IF allows."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending: set[int] = set()
        self.on_raise: Callable[[], None] = _nothing
        """Called on every raise (the CPU uses it to look at interrupts only when one is pending)."""

    def raise_irq(self, vector: int, device: str) -> None:
        """Mark `vector` pending (idempotent, like a level-triggered line)."""
        self.pending.add(vector)
        self.on_raise()
        events = self.sink.events
        if events is not None:
            events.append(InterruptRaised(self.sink.step, vector, device))

    def take(self) -> int:
        """Remove and return the highest-priority pending vector."""
        vector = min(self.pending)
        self.pending.discard(vector)
        return vector


class PortBus:
    """Routes IN/OUT to the device that owns the port; later issues extend this into the I/O router."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.devices: dict[int, Device] = {}
        self.counters = {"port_reads": 0, "port_writes": 0}

    def attach(self, device: Device, *ports: int) -> None:
        """Register `device` for each of `ports`."""
        for port in ports:
            self.devices[port] = device

    def read(self, port: int) -> int:
        """Perform IN from `port`."""
        device = self.devices.get(port)
        value = device.read(port) & 0xFFFF_FFFF if device is not None else UNMAPPED_READ
        self.counters["port_reads"] += 1
        self._record(port, value, False, device)
        return value

    def write(self, port: int, value: int) -> None:
        """Perform OUT to `port`."""
        device = self.devices.get(port)
        if device is not None:
            device.write(port, value)
        self.counters["port_writes"] += 1
        self._record(port, value, True, device)

    def _record(self, port: int, value: int, write: bool, device: Any) -> None:
        events = self.sink.events
        if events is not None:
            events.append(PortIO(self.sink.step, port, value, write,
                                 device.name if device is not None else "unmapped"))
