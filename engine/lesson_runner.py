"""Running a lesson: build its machine, perform step actions, rewind exactly, check expectations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.events import Event, PageWalkRead
from engine.lesson import (
    Lesson,
    LessonStep,
    Outcome,
    ResolvedQuestion,
    check_expectations,
    condition_holds,
    console_of,
    event_matches,
    read_register,
    resolve_question,
    resolve_value,
)
from engine.program import Program
from engine.programs import assemble_shipped, sample_names
from engine.systems import System, build_system
from engine.timetravel import TimeMachine


def build_lesson_machine(lesson: Lesson) -> System:
    """The machine (or VMM host) a lesson describes, at step 0. Program paths are relative to the lesson file."""
    from engine.asm import assemble, assemble_file

    setup = lesson.machine
    base = lesson.path.parent

    def program(name: str) -> Program | str:
        if name in sample_names() and not (base / name).is_file():
            return name
        return assemble_file(base / name)

    memory = ({"memory_mode": setup.memory_mode, "host_levels": setup.host_levels, "software_tlb": setup.software_tlb}
              if setup.mode != "native" else {})
    if setup.kernel:
        vms = [[program(name) for name in names] for names in setup.vms] or None
        return build_system(setup.mode, user_programs=[program(name) for name in setup.programs],
                            config=setup.config, vms=vms, overcommit=setup.overcommit, **memory)  # type: ignore[arg-type]
    if setup.source is not None:
        bare = assemble(setup.source, f"{lesson.path.name}[machine.source]")
    else:
        assert setup.program is not None
        chosen = program(setup.program)
        bare = assemble_shipped(chosen) if isinstance(chosen, str) else chosen
    return build_system(setup.mode, bare=bare, config=setup.config, **memory)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SubStep:
    """An instruction being shown a walk reference at a time (the `substep` action)."""

    step: int
    """The instruction's step number."""
    revealed: int
    """References shown so far (1-based)."""
    references: tuple[PageWalkRead, ...]
    """Every page-table entry the instruction read, in order."""


@dataclass(frozen=True)
class StepReport:
    """The result of performing one lesson step headless."""

    number: int
    outcome: Outcome
    failures: tuple[str, ...]


class LessonRunner:
    """Performs a lesson's steps in order on one machine, and rewinds exactly to any earlier step."""

    def __init__(self, lesson: Lesson, *, seed: int | None = None) -> None:
        self.lesson = lesson
        self.seed = lesson.machine.config.seed if seed is None else seed
        self.machine = build_lesson_machine(lesson)
        self.travel = TimeMachine(self.machine)
        self.position = 0
        """Index of the next step to perform (== number of steps performed)."""
        self.boundaries: list[int] = []
        """Machine step count before each performed lesson step."""
        self.breakpoints: set[int] = set()
        self.hidden_panels: set[str] = set()
        self.substep: SubStep | None = None
        """The instruction a `substep` action is revealing (None when not sub-stepping)."""
        self._substeps: list[SubStep | None] = []
        """The sub-step in progress before each performed lesson step."""

    @property
    def steps(self) -> tuple[LessonStep, ...]:
        """The lesson's steps."""
        return self.lesson.steps

    def question(self, index: int) -> ResolvedQuestion | None:
        """The resolved question of step `index` (0-based), if it has one."""
        question = self.lesson.steps[index].question
        if question is None:
            return None
        return resolve_question(question, self.machine, seed=self.seed, step_number=index + 1)

    def perform(self, index: int) -> Outcome:
        """Run the action of step `index`, which must be the next step."""
        if index != self.position:
            raise ValueError(f"step {index + 1} is not next (next is {self.position + 1})")
        self.boundaries.append(self.machine.steps)
        self._substeps.append(self.substep)
        self.position += 1
        return self._act(self.lesson.steps[index])

    def rewind_to(self, index: int) -> None:
        """Put machine and lesson state back exactly as they were before step `index` ran."""
        if not 0 <= index <= self.position:
            raise ValueError(f"cannot rewind to step {index + 1}")
        target = self.boundaries[index] if index < len(self.boundaries) else self.machine.steps
        self.travel.go_to(target)
        if index < len(self._substeps):
            self.substep = self._substeps[index]
        del self.boundaries[index:]
        del self._substeps[index:]
        self.position = index
        self.breakpoints.clear()
        self.hidden_panels.clear()
        for step in self.lesson.steps[:index]:  # replay the non-machine effects of earlier actions
            if step.action.do == "breakpoint" and step.action.label:
                self.breakpoints.add(resolve_value(step.action.label, self.machine.programs))
            elif step.action.do == "toggle_panel" and step.action.panel:
                self.hidden_panels ^= {step.action.panel}

    def check(self, index: int, outcome: Outcome) -> list[str]:
        """Failures of step `index`'s expectations and of its question's `verify`, after it ran."""
        step = self.lesson.steps[index]
        failures = check_expectations(step, self.machine, outcome)
        if not outcome.reached:
            failures.insert(0, f"action '{step.action.do}' did not reach its target within "
                               f"{step.action.max_steps} steps")
        question = step.question
        if question is not None and question.verify is not None:
            resolved = self.question(index)
            assert resolved is not None
            actual = read_register(self.machine, question.verify)
            if actual != resolved.answer:
                failures.append(f"question: the answer is {resolved.answer_text()} but after the action "
                                f"{question.verify} == {actual:#x}")
        return failures

    def _act(self, step: LessonStep) -> Outcome:
        action = step.action
        travel, machine = self.travel, self.machine
        if action.do == "substep":
            outcomes = [self._substep() for _ in range(action.count)]
            last = outcomes[-1]
            return Outcome(tuple(e for o in outcomes for e in o.events), sum(o.steps_run for o in outcomes),
                           revealed=last.revealed, references=last.references)
        if action.do not in ("none", "breakpoint", "toggle_panel"):
            self.substep = None  # any other command that moves the machine finishes the sub-step
        if action.do == "reset":
            travel.reset()
            return Outcome((), 0)
        if action.do == "step":
            events: list[Event] = []
            for _ in range(action.count):
                events.extend(travel.step().events)
            return Outcome(tuple(events), action.count)
        if action.do == "run":
            return Outcome((), travel.run(action.count))
        if action.do in ("run_until", "goto_label"):
            return self._run_until(step)
        if action.do == "breakpoint":
            assert action.label is not None
            self.breakpoints.add(resolve_value(action.label, machine.programs))
        elif action.do == "toggle_panel":
            assert action.panel is not None
            self.hidden_panels ^= {action.panel}
        return Outcome((), 0)

    def _substep(self) -> Outcome:
        """Reveal the next walk reference; with none left (or none started), run one step and show its first."""
        sub = self.substep
        if sub is not None and sub.step == self.machine.steps - 1 and sub.revealed < len(sub.references):
            self.substep = SubStep(sub.step, sub.revealed + 1, sub.references)
            return Outcome((), 0, revealed=self.substep.revealed, references=sub.references)
        result = self.travel.step()
        references = tuple(e for e in result.events if isinstance(e, PageWalkRead))
        self.substep = SubStep(result.step, 1, references) if references else None
        return Outcome(result.events, 1, revealed=1 if references else 0, references=references)

    def _run_until(self, step: LessonStep) -> Outcome:
        action = step.action
        machine = self.machine
        target = resolve_value(action.label, machine.programs) if action.do == "goto_label" and action.label else None
        events: list[Event] = []
        for count in range(1, action.max_steps + 1):
            if machine.halted:
                return Outcome(tuple(events), count - 1, False)
            produced = self.travel.step().events
            events.extend(produced)
            if target is not None and machine.cpu.pc == target:
                return Outcome(tuple(events), count)
            if action.event is not None and any(
                    event_matches(e, action.event, action.where, machine.programs) for e in produced):
                return Outcome(tuple(events), count)
            if action.condition is not None and condition_holds(machine, action.condition):
                return Outcome(tuple(events), count)
            if action.console is not None and action.console in console_of(machine, action.vm):
                return Outcome(tuple(events), count)
        return Outcome(tuple(events), action.max_steps, False)


def check_lesson(lesson: Lesson, *, seed: int | None = None) -> list[str]:
    """Run every step headless; return failures as 'file: step N: message' lines (empty = passes)."""
    runner = LessonRunner(lesson, seed=seed)
    failures: list[str] = []
    for index in range(len(lesson.steps)):
        outcome = runner.perform(index)
        failures.extend(f"{lesson.path}: step {index + 1}: {message}" for message in runner.check(index, outcome))
    return failures


def lesson_files(directory: Path) -> list[Path]:
    """Lesson files in `directory`, in their numbered order."""
    return sorted(directory.glob("*.toml"))
