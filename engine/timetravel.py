"""Time travel: step back and go to step N at any point of a long run, by checkpoints plus re-execution.

The engine is deterministic, so restoring the nearest earlier checkpoint and re-running the missing
steps reproduces the exact state. Checkpoints are thinned (every other one dropped, interval
doubled) when there are too many, so memory stays bounded however long the run.
"""

from __future__ import annotations

from typing import Protocol

from engine.machine import MachineState, StepResult


class Steppable(Protocol):
    """What time travel needs: a Machine, or a Hypervisor running VMs."""

    @property
    def steps(self) -> int: ...

    @property
    def halted(self) -> bool: ...

    def step(self) -> StepResult: ...

    def run(self, max_steps: int) -> int: ...

    def snapshot(self) -> MachineState: ...

    def restore(self, state: MachineState) -> None: ...


class TimeMachine:
    """Drives a Machine (or Hypervisor) and remembers enough to return to any earlier step."""

    def __init__(self, machine: Steppable, *, checkpoint_every: int = 2000, max_checkpoints: int = 200) -> None:
        if checkpoint_every < 1 or max_checkpoints < 4:
            raise ValueError("checkpoint_every must be >= 1 and max_checkpoints >= 4")
        self.machine = machine
        self.interval = checkpoint_every
        self.max_checkpoints = max_checkpoints
        self.initial = machine.snapshot()
        self.checkpoints: dict[int, MachineState] = {self.initial.steps: self.initial}
        self.furthest = machine.steps
        """The highest step reached so far (the end of the timeline scrubber)."""

    @property
    def steps(self) -> int:
        """Current step of the machine."""
        return self.machine.steps

    def _maybe_checkpoint(self) -> None:
        steps = self.machine.steps
        if steps % self.interval == 0 and steps not in self.checkpoints:
            self.checkpoints[steps] = self.machine.snapshot()
            if len(self.checkpoints) > self.max_checkpoints:
                self.interval *= 2
                base = self.initial.steps
                self.checkpoints = {s: st for s, st in self.checkpoints.items()
                                    if s == base or s % self.interval == 0}

    def step(self) -> StepResult:
        """One recorded step."""
        self._maybe_checkpoint()
        result = self.machine.step()
        self.furthest = max(self.furthest, self.machine.steps)
        return result

    def run(self, count: int) -> int:
        """Up to `count` unrecorded steps, checkpointing on the way; returns how many ran."""
        done = 0
        machine = self.machine
        while done < count and not machine.halted:
            self._maybe_checkpoint()
            until_next = self.interval - machine.steps % self.interval
            ran = machine.run(min(count - done, until_next))
            if ran == 0:
                break
            done += ran
        self.furthest = max(self.furthest, machine.steps)
        return done

    def go_to(self, target: int) -> None:
        """Put the machine exactly at step `target` (clamped at 0; forward targets run ahead)."""
        target = max(target, self.initial.steps)
        if target < self.machine.steps:
            start = max(s for s in self.checkpoints if s <= target)
            self.machine.restore(self.checkpoints[start])
        self.run(target - self.machine.steps)

    def step_back(self, count: int = 1) -> StepResult | None:
        """Go back `count` steps; returns the (re-recorded) step that led to the new position, if any."""
        target = max(self.machine.steps - count, self.initial.steps)
        if target == self.initial.steps:
            self.go_to(target)
            return None
        self.go_to(target - 1)
        return self.step()

    def reset(self) -> None:
        """Back to the state the machine had when this TimeMachine was created."""
        self.machine.restore(self.initial)
