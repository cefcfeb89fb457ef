"""The one place the app drives the engine.

`EngineBridge` owns the TimeMachine, the recorded window of recent steps, breakpoints and the run loop.
Running never blocks the event loop: a Textual timer fires 30 times a second and each tick runs a
batch of steps within a time budget, so the app stays responsive even if the guest loops forever,
and the screen repaints at most once per tick. Run-until conditions run fast with the engine's
counters as probes and, when a counter moves, replay the last batch step by step to stop exactly
after the step that caused it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from time import perf_counter
from typing import cast

from textual.message_pump import MessagePump
from textual.timer import Timer

from engine.events import PortIO, TrapTaken
from engine.machine import Machine, StepResult
from engine.timetravel import TimeMachine
from engine.vmm import Hypervisor
from vizvm import viewmodel as vm
from vizvm.history import Recording, handler_depth_change
from vizvm.memview import frame_map, host_frames
from vizvm.messages import MachineChanged, RunStateChanged
from vizvm.viewmodel import StatusState, machine_title
from vizvm.vmm_view import timeline_state, vcpu_state, vmm_goal_reached, vmm_probe
from vizvm.walkview import walk_references

SPEEDS: tuple[int, ...] = (1, 10, 100, 1_000, 10_000, 100_000, 0)
"""Run speeds in steps per second; 0 means as fast as the engine goes."""
RECORDED_SPEED_LIMIT = 1_000
"""At or below this speed every step is recorded live (the log and timeline fill as it runs)."""
TICK = 1 / 25
ENGINE_BUDGET = 0.024
"""Seconds of engine work per tick when running flat out (the rest is for repainting and input)."""
WINDOW = 1_000
"""How many recent steps are kept with their events."""
CHECKPOINT_EVERY = 16_384
"""TimeMachine checkpoint interval: a checkpoint costs about 1.4 ms (a compressed copy of memory), so
the engine's default of 2,000 would spend most of a flat-out run snapshotting; going back replays at
most this many steps (about 12 ms)."""

GOAL_LABELS: dict[str, str] = {
    "run": "run", "trap": "run until the next trap", "page-fault": "run until the next page fault",
    "io": "run until the next I/O", "breakpoint": "run until a breakpoint", "iret": "step out of the handler",
    "step": "go to step",
}


class EngineBridge:
    """Drives one machine for the machine screen and computes the state each panel shows."""

    def __init__(self, machine: Machine, title: str | None = None, *, window: int = WINDOW) -> None:
        self.window = window
        self.owner: MessagePump | None = None
        self._timer: Timer | None = None
        self.speed_index = len(SPEEDS) - 1
        self.breakpoints: set[int] = set()
        self.running = False
        self.goal = "run"
        self.target = -1
        self.cumulative = False
        self.engine_rate = 0.0
        self.last_stop = ""
        self._credit = 0.0
        self._chunk = 2_000
        self._depth = 0
        self.furthest = 0
        self.substep: vm.SubStepState | None = None
        """The instruction whose walk references are being revealed one at a time (None: not sub-stepping)."""
        self.load(machine, title)

    # ------------------------------------------------------------------ wiring
    def attach(self, owner: MessagePump) -> None:
        """Report to `owner` and drive the run loop from a timer on it."""
        self.owner = owner
        self._timer = owner.set_interval(TICK, self.tick, pause=True, name="vizvm-run")

    def _post(self, reason: str, live: bool = False) -> None:
        self.furthest = max(self.furthest, self.machine.steps)
        if self.owner is not None:
            self.owner.post_message(MachineChanged(reason, live))

    @property
    def machine(self) -> Machine:
        """The machine being driven."""
        return cast(Machine, self.tm.machine)

    def load(self, machine: Machine, title: str | None = None) -> None:
        """Drive `machine` from now on (the previous one is dropped)."""
        self.adopt(TimeMachine(machine, checkpoint_every=CHECKPOINT_EVERY), title)

    def adopt(self, travel: TimeMachine, title: str | None = None) -> None:
        """Drive the machine of a TimeMachine someone else also moves (a lesson's runner), sharing its history.

        After the other driver moves the machine, call `resync`.
        """
        if getattr(self, "running", False):
            self.pause("loaded another program", settle=False)
        self.tm = travel
        self.substep = None
        machine = self.machine
        self.furthest = machine.steps
        """The furthest step shown so far (the end of the scrubber)."""
        self.title = title or machine_title(machine)
        self.recording = Recording(machine.steps)
        self.breakpoints = set()
        self._before = vm.registers(machine)
        self._mark = dict(self._before)
        self._mark_step = machine.steps
        self._post("load")

    def resync(self) -> None:
        """The machine was moved by its other driver: pause, rebuild the recorded window here and report."""
        if self.running:
            self.pause("the lesson moved the machine", settle=False)
        self.substep = None
        self.last_stop = ""
        self._settle(self.machine.steps, canonical=True)
        self._post("resync")

    # ------------------------------------------------------------------ stepping
    def step(self, count: int = 1) -> int:
        """Run `count` recorded steps (stops at a halt); returns how many ran."""
        if self.running:
            self.pause("paused to step")
        self.substep = None
        machine, done = self.machine, 0
        self.last_stop = ""
        while done < count and not machine.halted:
            self._before = vm.registers(machine)
            self.recording.append(self.tm.step())
            done += 1
        self.recording.trim(self.window)
        self._post("step")
        return done

    def substep_forward(self) -> vm.SubStepState | None:
        """Reveal the next walk reference of the instruction being sub-stepped.

        With none in progress (or after its last reference) this runs one recorded step like `step`
        and shows its first reference; an instruction that read no page-table entry is just a step.
        Returns the sub-step now shown (None when the step read no entry or the machine has halted).
        """
        sub = self.substep
        if sub is not None and sub.step == self.machine.steps - 1 and sub.revealed < sub.total:
            self.substep = replace(sub, revealed=sub.revealed + 1)
            self._post("substep")
            return self.substep
        if self.step() == 0:
            return None
        last = self.recording.last()
        references = walk_references(last.events) if last is not None else ()
        if last is not None and references:
            self.substep = vm.SubStepState(last.step, 1, len(references))
            self._post("substep")
        return self.substep

    def show_substep(self, step: int, revealed: int, total: int) -> None:
        """Show walk reference `revealed` of `total` of step `step` (a lesson's sub-step), if that step is the last."""
        if self.machine.steps - 1 == step and 1 <= revealed <= total:
            self.substep = vm.SubStepState(step, revealed, total)
            self._post("substep")

    def step_back(self, count: int = 1) -> None:
        """Go back `count` steps (the recorded window follows)."""
        if self.running:
            self.pause("paused to step back")
        self.substep = None
        self.last_stop = ""
        self._settle(self.machine.steps - count)
        self._post("back")

    def go_to(self, target: int) -> None:
        """Put the machine at step `target`: at once if it was visited, else by running there."""
        if self.running:
            self.pause("paused to jump", settle=False)
        self.substep = None
        if target <= self.tm.furthest:
            self.last_stop = ""
            self._settle(target)
            self._post("goto")
        else:
            self.target = target
            self.run("step")

    def reset(self) -> None:
        """Back to step 0 of the loaded program (breakpoints stay)."""
        if self.running:
            self.pause("reset", settle=False)
        self.substep = None
        self.tm.reset()
        self.last_stop = ""
        self.recording.clear(self.machine.steps)
        self._before = vm.registers(self.machine)
        self._post("reset")

    def _settle(self, target: int, canonical: bool = False) -> None:
        """Move to `target` (at most `furthest`) and make the recorded window end there.

        `canonical` makes the window exactly the last `window` steps (after a run, so what the panels
        show does not depend on how the run was batched).
        """
        tm, rec, machine = self.tm, self.recording, self.machine
        floor = tm.initial.steps
        target = max(min(target, tm.furthest), floor)
        start = max(floor, target - self.window)
        if canonical and machine.steps == target and rec.hi == target and rec.lo <= start:
            rec.trim(target - start)
            return
        wanted = min(self.window // 2, target - floor)
        if not canonical and machine.steps == target and rec.hi == target and len(rec) >= wanted:
            return
        if not canonical and rec.lo < target <= rec.hi and target - rec.lo >= wanted:
            rec.truncate(target - 1)
            tm.go_to(target - 1)
            self._before = vm.registers(machine)
            rec.append(tm.step())
            return
        tm.go_to(start)
        rec.clear(start)
        self._before = vm.registers(machine)
        while machine.steps < target and not machine.halted:
            self._before = vm.registers(machine)
            rec.append(tm.step())

    # ------------------------------------------------------------------ running
    def run(self, goal: str = "run") -> str | None:
        """Start running toward `goal` (see GOAL_LABELS); returns why it cannot, or None."""
        machine = self.machine
        if machine.halted:
            return f"The machine has halted: {machine.halt_reason}. Reset (R) or step back (b)."
        if goal == "io" and isinstance(machine, Hypervisor):
            return "Under a VMM guest port I/O never reaches a device: t runs to the next exit to the VMM."
        if goal == "iret":
            if not self.inside_handler():
                return "Not inside a trap handler: no trap in the recorded steps is still waiting for its iret."
            self._depth = 0
        self.substep = None
        self.goal, self.running, self._credit = goal, True, 0.0
        self.last_stop = ""
        if machine.cpu.pc in self.breakpoints:  # leave the breakpoint we are sitting on
            reason = self._record_one()
            if reason:
                self.pause(reason)
                return None
        if self._timer is not None:
            self._timer.resume()
        if self.owner is not None:
            self.owner.post_message(RunStateChanged(True))
        self._post("run", live=True)
        return None

    def pause(self, reason: str = "paused", *, settle: bool = True) -> None:
        """Stop running; the recorded window is rebuilt to end at the current step."""
        if self._timer is not None:
            self._timer.pause()
        was_running, self.running = self.running, False
        self.last_stop = reason
        if settle:
            self._settle(self.machine.steps, canonical=True)
        if was_running and self.owner is not None:
            self.owner.post_message(RunStateChanged(False, reason))
        self._post("stop")

    def inside_handler(self) -> bool:
        """True if a trap in the recorded window has not returned yet."""
        depth = 0
        for result in self.recording:
            depth = max(depth + handler_depth_change(result), 0)
        return depth > 0

    def tick(self) -> None:
        """One timer tick: run a batch within the budget, then report (called by the timer, tests, benchmark)."""
        if not self.running:
            return
        started = perf_counter()
        deadline = started + ENGINE_BUDGET
        speed = SPEEDS[self.speed_index]
        if speed:
            self._credit = min(self._credit + speed * TICK, speed * TICK * 2 + 1)
            count = int(self._credit)
            self._credit -= count
        else:
            count = 1 << 30
        self._before = vm.registers(self.machine)
        first = self.machine.steps
        if self.goal == "iret" or (speed and speed <= RECORDED_SPEED_LIMIT):
            reason = self._run_recorded(count, deadline)
        else:
            reason = self._run_fast(count, deadline)
        elapsed = perf_counter() - started
        if elapsed > 0 and self.machine.steps > first:
            rate = (self.machine.steps - first) / elapsed
            self.engine_rate = rate if not self.engine_rate else 0.7 * self.engine_rate + 0.3 * rate
        if reason:
            self.pause(reason)
        else:
            self._post("run", live=True)

    def _record_one(self) -> str:
        """One recorded step during a run; returns a stop reason or ''."""
        self._before = vm.registers(self.machine)
        result = self.tm.step()
        self.recording.append(result)
        return self._goal_reached(result) or self._stop_check()

    def _run_recorded(self, count: int, deadline: float) -> str:
        for done in range(count):
            if done % 64 == 0 and perf_counter() > deadline:
                break
            reason = self._record_one()
            if reason:
                return reason
        self.recording.trim(self.window)
        return ""

    def _stop_check(self) -> str:
        machine = self.machine
        if machine.halted:
            return f"halted: {machine.halt_reason}"
        if machine.cpu.pc in self.breakpoints:
            return f"breakpoint at {machine.cpu.pc:#010x}"
        if self.goal == "step" and machine.steps >= self.target:
            return f"reached step {machine.steps}"
        return ""

    def _goal_reached(self, result: StepResult) -> str:
        goal = self.goal
        for event in result.events:
            if isinstance(event, TrapTaken):
                if goal == "trap" or (goal == "page-fault" and event.vector == 14):
                    extra = f" at {event.fault_address:#010x}" if event.vector == 14 else ""
                    return f"trap: {event.cause}{extra} (vector {event.vector})"
            elif isinstance(event, PortIO) and goal == "io":
                op = "out" if event.write else "in"
                return f"I/O: {op} port {event.port:#x} = {event.value:#x} ({event.device})"
            elif vmm_goal_reached(event, goal):  # under a VMM: an exit to it, or a page fault it reflects
                return vmm_goal_reached(event, goal)
        if goal == "iret":
            self._depth += handler_depth_change(result)
            if self._depth < 0:
                return f"returned from the handler to {self.machine.cpu.pc:#010x}"
        return ""

    def _probe(self) -> Callable[[], int] | None:
        machine = self.machine
        cpu, ports = machine.cpu, machine.ports.counters
        if isinstance(machine, Hypervisor):
            return vmm_probe(machine, self.goal)
        if self.goal == "trap":
            return lambda: sum(cpu.trap_counts.values())
        if self.goal == "page-fault":
            return lambda: cpu.trap_counts.get(14, 0)
        if self.goal == "io":
            return lambda: ports["port_reads"] + ports["port_writes"]
        return None

    def _run_fast(self, count: int, deadline: float) -> str:
        machine, tm = self.machine, self.tm
        probe = self._probe()
        while count > 0 and perf_counter() < deadline:
            chunk = min(self._chunk, count)
            if self.goal == "step":
                chunk = min(chunk, self.target - machine.steps)
                if chunk <= 0:
                    return f"reached step {machine.steps}"
            first, before = machine.steps, probe() if probe else 0
            started = perf_counter()
            ran, at_breakpoint = self._run_checking(chunk) if self.breakpoints else (tm.run(chunk), False)
            spent = perf_counter() - started
            if probe is not None and probe() != before:
                return self._locate(first)
            if at_breakpoint or machine.halted or ran == 0:
                return self._stop_check() or "stopped"
            count -= ran
            if spent > 0:  # aim for chunks of about 4 ms so the deadline is kept
                self._chunk = max(64, min(200_000, int(self._chunk * 0.004 / spent * 0.5 + self._chunk * 0.5)))
        return self._stop_check() if self.goal == "step" else ""

    def _run_checking(self, count: int) -> tuple[int, bool]:
        run, cpu, breakpoints = self.tm.run, self.machine.cpu, self.breakpoints
        for done in range(count):
            if run(1) == 0:
                return done, False
            if cpu.pc in breakpoints:
                return done + 1, True
        return count, False

    def _locate(self, first: int) -> str:
        """Replay from `first` with recording until the step the goal was waiting for."""
        self.tm.go_to(first)
        self.recording.clear(first)
        limit = self._chunk + 1
        for _ in range(limit):
            reason = self._record_one()
            if reason:
                return reason
        return "stopped"

    # ------------------------------------------------------------------ settings
    def toggle_breakpoint(self, address: int) -> bool:
        """Set or clear the breakpoint at a virtual address; returns True if now set."""
        if address in self.breakpoints:
            self.breakpoints.discard(address)
            self._post("breakpoint")
            return False
        self.breakpoints.add(address)
        self._post("breakpoint")
        return True

    def change_speed(self, delta: int) -> int:
        """Move along SPEEDS; returns the new speed (0 = max)."""
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self._post("speed")
        return SPEEDS[self.speed_index]

    def toggle_cumulative(self) -> bool:
        """Switch between 'changed by the last step' and 'changed since the mark' (the mark is now)."""
        self.cumulative = not self.cumulative
        self._mark = vm.registers(self.machine)
        self._mark_step = self.machine.steps
        self._post("cumulative")
        return self.cumulative

    # ------------------------------------------------------------------ state for the panels
    def status(self) -> StatusState:
        """The status line state."""
        machine = self.machine
        return StatusState(self.title, machine.steps, self.furthest, self.running,
                           GOAL_LABELS.get(self.goal, self.goal), SPEEDS[self.speed_index], machine.halted,
                           machine.halt_reason, machine.exit_code, len(self.breakpoints), self.engine_rate,
                           (self.recording.lo, self.recording.hi), self.last_stop, self.substep)

    def cpu_state(self) -> vm.CpuState:
        """Registers with what changed (last step, last frame while running, or since the mark)."""
        machine = self.machine
        values = vm.registers(machine)
        base, since = (self._mark, self._mark_step) if self.cumulative else (self._before, machine.steps - 1)
        changed = frozenset(name for name, value in values.items() if base.get(name) != value)
        return vm.CpuState(values, changed, {name: base[name] for name in changed if name in base},
                           self.cumulative, since, machine.cpu.paging, machine.halted, machine.counters(),
                           vcpu_state(machine))

    def code_state(self) -> vm.CodeState:
        """Disassembly around pc."""
        return vm.code_state(self.machine, frozenset(self.breakpoints))

    def mapper_state(self, with_frames: bool = True) -> vm.MapperState:
        """The memory mapper: translation, walk, TLB, frame map."""
        frames = frame_map(self.machine) if with_frames else None
        host = host_frames(self.machine) if with_frames else None
        return vm.mapper_state(self.machine, self.recording, frames, self.substep, host)

    def timeline_state(self) -> vm.TimelineState:
        """Lanes and transitions over the recorded window (guest user / guest kernel / VMM when virtualized)."""
        return timeline_state(self.machine, self.recording)

    def io_state(self) -> vm.IoState:
        """Port accesses in the window and the console output."""
        ports = self.machine.ports.counters
        events = tuple(e for e in self.recording.events(frozenset({"io"})) if isinstance(e, PortIO))
        vms = getattr(self.machine, "vms", ())
        if len(vms) > 1:  # several VMs: the running one's console
            current = self.machine.current  # type: ignore[attr-defined]
            return vm.IoState(events, current.console_text, ports["port_reads"], ports["port_writes"],
                              self.machine.steps, f"vm{current.vm_id}")
        return vm.IoState(events, self.machine.console_output, ports["port_reads"], ports["port_writes"],
                          self.machine.steps)

    def event_state(self, kinds: frozenset[str] | None) -> vm.EventLogState:
        """Events of the window for the log, filtered by kind."""
        rec = self.recording
        return vm.EventLogState(tuple(rec.events(kinds)), rec.lo, rec.hi, self.machine.steps, kinds)
