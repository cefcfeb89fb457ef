"""vizvm's simulation engine: the teaching ISA, CPU, MMU, devices and (later) the VMM.

Pure standard library: this package never imports textual, rich or vizvm.
"""

from engine.events import Event
from engine.machine import Machine, MachineConfig, MachineState, StepResult
from engine.program import Program

__all__ = ["Event", "Machine", "MachineConfig", "MachineState", "Program", "StepResult"]
__version__ = "0.1.0"
