"""Which world each event happened in: user / kernel natively; guest user / guest kernel / VMM virtualized."""

from __future__ import annotations

from engine.events import Event

VMM_KINDS = frozenset({"vm-exit", "vm-entry", "emulate", "reflect", "hypercall", "bt-translate", "bt-invalidate",
                       "vm-switch", "vm-stop"})


class WorldTracker:
    """Follows transitions in an event stream and labels every event with its world."""

    def __init__(self, mode: str, ring: int) -> None:
        self.virtual = mode != "native"
        self.mode = mode
        self.in_vmm = False
        self.guest_ring = self._guest_ring(ring)

    def _guest_ring(self, real_ring: int) -> int:
        if not self.virtual or self.mode == "hw":
            return real_ring
        return 3 if real_ring == 3 else 0

    def _name(self) -> str:
        base = "user" if self.guest_ring == 3 else "kernel"
        return f"guest {base}" if self.virtual else base

    def world_of(self, event: Event) -> str:
        """The world `event` happened in (call once per event, in order)."""
        kind = event.kind
        if kind == "vm-exit":
            self.in_vmm = True
            return "vmm"
        if kind == "vm-entry":
            self.in_vmm = False
            self.guest_ring = getattr(event, "guest_ring", self.guest_ring)
            return "vmm"
        if self.in_vmm or kind in VMM_KINDS:
            return "vmm"
        if kind == "instr":
            self.guest_ring = self._guest_ring(getattr(event, "ring", 0))
        world = self._name()
        if kind == "trap":
            self.guest_ring = 0
        elif kind == "iret":
            self.guest_ring = self._guest_ring(getattr(event, "to_ring", 0))
        return world
