"""The virtual CPU beside the real one, drawn inside the CPU panel when a VMM runs the guest.

Trap-and-emulate's lesson is in the rows that differ: the guest kernel believes it runs in ring 0
with interrupts as it set them and its own trap table, while the real CPU runs it in ring 1 with
interrupts on and the VMM's trap table. Those rows are highlighted.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from engine.vmm import MODE_TITLES
from vizvm.vmm_view import VCpuState

VCPU_COMPONENTS = frozenset({"cpu--differs", "cpu--virtual"})
"""Component classes the CPU panel declares for this section."""
SHORT_VECTORS = {32: "timer", 33: "device"}


def render_vcpu(out: Text, vcpu: VCpuState, s: dict[str, Style], changed: frozenset[str], *,
                short: bool = False) -> None:
    """Append the real-versus-virtual table: one row per piece of system state, differing rows marked ≠.

    `short` (a panel too low for the table): one line naming what differs, as real/guest values.
    """
    if short:
        differs = [row for row in vcpu.rows if row.differs]
        if not differs:
            out.append(f"{MODE_TITLES[vcpu.mode]}: real = guest\n", style=s["heading"])
            return
        out.append("≠ ", style=s["differs"])
        for row in differs:
            value = f" {row.real}/{row.virtual}" if len(row.real) < 3 else ""
            out.append(f"{row.name}{value} ", style=s["differs"])
        out.append("(real/guest)\n", style=s["old"])
        return
    guest = "guest" if vcpu.mode != "hw" else "guest mode"
    out.append(f"{MODE_TITLES[vcpu.mode]}\n", style=s["heading"])
    out.append(f"{'':<6}{'real':<10}{guest}\n", style=s["name"])
    for row in vcpu.rows:
        style = s["differs"] if row.differs else Style()
        out.append(f"{row.name:<6}", style=s["name"] + style if row.differs else s["name"])
        real_style = s["changed"] if row.name.lower() in changed else style
        out.append(f"{row.real:<8}", style=real_style)
        out.append("  ", style=style)
        out.append(f"{row.virtual:<8}", style=(s["virtual"] + style) if row.differs else s["virtual"])
        out.append("  ≠" if row.differs else "   ", style=style)
        out.append("\n")
    if vcpu.pending:
        held = ", ".join(SHORT_VECTORS.get(v, str(v)) for v in vcpu.pending)
        out.append(f"held for the guest: {held}\n", style=s["old"])
    base, size = vcpu.guest_memory
    where = f"{size // 1024}K: host pool frames" if base < 0 else f"at {base:#x}+{size // 1024}K"
    out.append(f"guest memory {where}\n", style=s["old"])
