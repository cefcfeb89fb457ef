"""Lessons as data: the TOML lesson format, its validator, and a headless runner.

A lesson is read with the stdlib `tomllib` and validated field by field; every problem is reported as a
LessonError naming the file, the step and the field. Unknown fields are errors. Nothing in a lesson is
executed as code: actions, conditions and expectations are a small fixed vocabulary (docs/lessons.md).
"""

from __future__ import annotations

import difflib
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import EVENT_KINDS, EVENT_TYPES, Event
from engine.hostmem import OvercommitConfig
from engine.machine import ConfigError, MachineConfig
from engine.mmu import split_levels
from engine.program import Program

PANELS = ("code", "cpu", "timeline", "memory", "io", "log", "vmm", "lesson")
ACTIONS = ("none", "reset", "step", "substep", "run", "run_until", "goto_label", "breakpoint", "toggle_panel")
QUESTION_KINDS = ("choice", "number", "address")
GENERATORS = ("va-index", "va-offset", "va-vpn")
REGISTERS = ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "sp", "pc", "flags", "ring",
             "cr0", "cr2", "cr3", "ksp", "idtr", "steps", "guest_ring", "guest_if")
MODES = ("native", "trap", "bt", "pv", "hw")
DEFAULT_MAX_STEPS = 200_000
_EVENT_FIELDS = {t.kind: {f for f in t.__dataclass_fields__ if f != "step"} for t in EVENT_TYPES}
_CONDITION = re.compile(r"^\s*(\w+)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$")


class LessonError(ValueError):
    """A lesson file is malformed; the message names the file, the step and the field."""

    def __init__(self, path: str, message: str, *, step: int | None = None, field_name: str | None = None) -> None:
        where = path
        if step is not None:
            where += f": step {step}"
        if field_name is not None:
            where += f": field '{field_name}'"
        super().__init__(f"{where}: {message}")
        self.path, self.step, self.field_name, self.detail = path, step, field_name, message


# ---------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Action:
    """What a step does to the machine."""

    do: str = "none"
    count: int = 1
    event: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    condition: str | None = None
    label: str | None = None
    panel: str | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    console: str | None = None
    """run_until: stop once this VM's console shows this text."""
    vm: int = 0
    """Whose console `console` means (several VMs on one host)."""


@dataclass(frozen=True)
class Expectation:
    """One assertion checked after a step's action (by `vizvm lessons check` and the player)."""

    event: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    count: int | None = None
    register: str | None = None
    equals: int | str | None = None
    console: str | None = None
    halted: bool | None = None
    reference: int | None = None
    """A sub-step has revealed exactly this walk reference (1-based), whose fields match `where`."""
    counter: str | None = None
    """A counter of the machine (`counters()`), compared with `equals`, `at_least` and/or `at_most`."""
    at_least: int | None = None
    at_most: int | None = None
    vm: int = 0
    """Whose console `console` means (several VMs on one host)."""


@dataclass(frozen=True)
class Question:
    """A predict-then-reveal question, asked before the action runs."""

    prompt: str
    kind: str
    answer: int | None = None
    choices: tuple[str, ...] = ()
    explanation: str = ""
    generate: str | None = None
    level: int = 1
    verify: str | None = None


@dataclass(frozen=True)
class LessonStep:
    """One step of a lesson."""

    title: str
    narration: str
    action: Action
    focus: tuple[str, ...] = ()
    expect: tuple[Expectation, ...] = ()
    question: Question | None = None


@dataclass(frozen=True)
class MachineSetup:
    """How the lesson's machine is built."""

    kernel: bool = False
    programs: tuple[str, ...] = ()
    program: str | None = None
    source: str | None = None
    config: MachineConfig = field(default_factory=MachineConfig)
    mode: str = "native"
    """native, or a VMM mode: trap, bt, pv, hw."""
    memory_mode: str = "relocation"
    """How a VMM virtualizes guest memory: relocation, shadow or nested."""
    host_levels: int = 4
    """Levels of the host's page tables under nested paging."""
    software_tlb: int = 0
    """Entries of Disco's VMM software TLB (a VMM mode with tlb_managed = "software")."""
    vms: tuple[tuple[str, ...], ...] = ()
    """Several VMs on one host, each the kernel with these user programs (instead of `programs`)."""
    overcommit: OvercommitConfig | None = None
    """The host's shared frame pool, page sharing and ballooning (nested paging)."""


@dataclass(frozen=True)
class Lesson:
    """A validated lesson."""

    path: Path
    name: str
    title: str
    summary: str
    topics: tuple[str, ...]
    minutes: int
    machine: MachineSetup
    steps: tuple[LessonStep, ...]


@dataclass(frozen=True)
class ResolvedQuestion:
    """A question with its generated values filled in and its answer known."""

    prompt: str
    kind: str
    choices: tuple[str, ...]
    answer: int
    explanation: str

    def answer_text(self) -> str:
        """The answer as a student would write it."""
        if self.kind == "choice":
            return f"{self.answer + 1}. {self.choices[self.answer]}"
        return f"{self.answer:#x}" if self.kind == "address" else str(self.answer)

    def is_correct(self, response: str) -> bool:
        """Whether a typed response (a choice number 1..n, a decimal or 0x-hex number) is right."""
        text = response.strip().lower()
        try:
            value = int(text, 0)
        except ValueError:
            return False
        return value - 1 == self.answer if self.kind == "choice" else value == self.answer


# ---------------------------------------------------------------------------------------------- loading
class _Reader:
    """Typed access to one TOML table with precise error messages."""

    def __init__(self, path: str, table: dict[str, Any], prefix: str, step: int | None) -> None:
        self.path, self.table, self.prefix, self.step = path, table, prefix, step

    def error(self, name: str, message: str) -> LessonError:
        return LessonError(self.path, message, step=self.step, field_name=self.prefix + name)

    def check_known(self, allowed: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else f"; allowed: {', '.join(allowed)}"
                raise self.error(key, f"unknown field{suggestion}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        if name not in self.table:
            if required:
                raise self.error(name, "is required")
            return default
        value = self.table[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(name, f"must be {_kind_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise self.error(name, f"must be {_kind_names(kinds)}, got {type(value).__name__}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None, *,
               required: bool = False) -> Any:
        value = self.get(name, str, default, required=required)
        if value is not None and value not in allowed:
            hint = difflib.get_close_matches(value, allowed, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise self.error(name, f"'{value}' is not one of {', '.join(allowed)}{suggestion}")
        return value

    def sub(self, name: str, required: bool = False) -> _Reader | None:
        table = self.get(name, dict, None, required=required)
        return None if table is None else _Reader(self.path, table, f"{self.prefix}{name}.", self.step)


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load_lesson(path: str | Path) -> Lesson:
    """Read and validate a lesson file; raises LessonError (never a raw TOML or key error)."""
    path = Path(path)
    label = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LessonError(label, f"cannot read the file ({error.strerror})") from None
    except UnicodeDecodeError:
        raise LessonError(label, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise LessonError(label, f"is not valid TOML: {error}") from None
    top = _Reader(label, data, "", None)
    top.check_known(("title", "summary", "topics", "minutes", "machine", "steps"))
    title = top.get("title", str, required=True)
    summary = top.get("summary", str, required=True)
    topics = _string_list(top, "topics")
    minutes = top.get("minutes", int, 10)
    if minutes < 1:
        raise top.error("minutes", "must be at least 1")
    machine_reader = top.sub("machine", required=True)
    assert machine_reader is not None
    machine = _machine_setup(machine_reader)
    raw_steps = top.get("steps", list, required=True)
    if not raw_steps:
        raise top.error("steps", "must list at least one step")
    steps = []
    for number, raw in enumerate(raw_steps, 1):
        if not isinstance(raw, dict):
            raise LessonError(label, "must be a table ([[steps]])", step=number)
        steps.append(_step(_Reader(label, raw, "", number), machine))
    name = path.stem
    return Lesson(path, name, title, summary, tuple(topics), minutes, machine, tuple(steps))


def _string_list(reader: _Reader, name: str) -> list[str]:
    values = reader.get(name, list, [])
    if not all(isinstance(v, str) for v in values):
        raise reader.error(name, "must be a list of strings")
    return list(values)


def _machine_setup(reader: _Reader) -> MachineSetup:
    config_fields = ("memory_size", "page_levels", "tlb_entries", "tlb_policy", "tlb_tagged", "tlb_managed",
                     "timer_interval", "seed", "console_input")
    reader.check_known(("kernel", "programs", "program", "source", "mode", "memory_mode", "host_levels",
                        "software_tlb", "vms", "overcommit", *config_fields))
    mode = reader.choice("mode", MODES, "native")
    memory_mode = reader.choice("memory_mode", ("relocation", "shadow", "nested"), "relocation")
    host_levels = reader.get("host_levels", int, 4)
    if not 1 <= host_levels <= 4:
        raise reader.error("host_levels", "must be 1..4")
    if mode == "native" and (memory_mode != "relocation" or "host_levels" in reader.table):
        raise reader.error("memory_mode", "memory virtualization needs a VMM: set 'mode' to trap, bt, pv or hw")
    kernel = reader.get("kernel", bool, False)
    programs = tuple(_string_list(reader, "programs"))
    program = reader.get("program", str)
    source = reader.get("source", str)
    if kernel and (program or source):
        raise reader.error("program", "a kernel lesson lists user programs in 'programs', not 'program'/'source'")
    if not kernel and not (program or source):
        raise reader.error("program",
                           "set 'kernel = true' (with 'programs') or give a bare-metal 'program' or 'source'")
    if program and source:
        raise reader.error("source", "give either 'program' or 'source', not both")
    values: dict[str, Any] = {}
    for name in config_fields:
        kind: type = bool if name == "tlb_tagged" else str if name in ("tlb_policy", "tlb_managed",
                                                                        "console_input") else int
        value = reader.get(name, kind)
        if value is not None:
            values[name] = value
    try:
        config = MachineConfig(**values).validate()
    except ConfigError as error:
        name = str(error).split(" ", 1)[0]
        raise reader.error(name if name in config_fields else "machine", str(error)) from None
    if config.tlb_managed == "software" and mode == "hw":
        raise reader.error("tlb_managed", "a software-managed TLB cannot run under hardware assist (mode 'hw')")
    if config.tlb_managed == "software" and memory_mode != "relocation":
        raise reader.error("tlb_managed", "a software-managed TLB needs memory_mode 'relocation'")
    software_tlb = reader.get("software_tlb", int, 0)
    if software_tlb and (config.tlb_managed != "software" or mode == "native" or software_tlb < 0):
        raise reader.error("software_tlb", "Disco's software TLB needs tlb_managed = \"software\", a VMM mode "
                                           "(trap, bt or pv) and a size >= 0")
    vms = _vms(reader, kernel, programs, mode)
    overcommit = _overcommit(reader, mode, memory_mode, config.seed)
    return MachineSetup(kernel, programs or (("hello",) if kernel else ()), program, source, config, mode,
                        memory_mode, host_levels, software_tlb, vms, overcommit)


def _vms(reader: _Reader, kernel: bool, programs: tuple[str, ...], mode: str) -> tuple[tuple[str, ...], ...]:
    """`vms = [["heap", "hog"], ["hog"]]`: one list of user programs per VM."""
    values = reader.get("vms", list, [])
    if not values:
        return ()
    if not kernel or programs:
        raise reader.error("vms", "several VMs each boot the kernel: set 'kernel = true' and list each VM's "
                                  "programs in 'vms' (not 'programs')")
    if mode == "native":
        raise reader.error("vms", "several VMs need a VMM: set 'mode' to trap, bt, pv or hw")
    if len(values) > 8 or not all(isinstance(v, list) and v and all(isinstance(n, str) for n in v)
                                  for v in values):
        raise reader.error("vms", "must be a list of 1 to 8 non-empty lists of program names, "
                                  "e.g. [[\"heap\", \"hog\"], [\"hog\"]]")
    return tuple(tuple(v) for v in values)


def _overcommit(reader: _Reader, mode: str, memory_mode: str, seed: int) -> OvercommitConfig | None:
    """`[machine.overcommit]`: host_frames and the sharing and reclaim settings of OvercommitConfig."""
    table = reader.sub("overcommit")
    if table is None:
        return None
    fields = ("host_frames", "share_interval", "share_batch", "reclaim_interval", "soft_free_percent",
              "high_free_percent")
    table.check_known(fields)
    if memory_mode != "nested" or mode in ("native", "bt"):
        raise reader.error("overcommit", "overcommit needs memory_mode = \"nested\" under mode trap, pv or hw")
    values = {name: table.get(name, int) for name in fields if name in table.table}
    if "host_frames" not in values:
        raise table.error("host_frames", "is required: the machine frames all the VMs share")
    try:
        return OvercommitConfig(**values, seed=seed).validate()
    except ValueError as error:
        name = str(error).split(" ", 1)[0]
        raise table.error(name if name in fields else "host_frames", str(error)) from None


def _step(reader: _Reader, machine: MachineSetup) -> LessonStep:
    reader.check_known(("title", "narration", "action", "focus", "expect", "question"))
    title = reader.get("title", str, required=True)
    narration = reader.get("narration", str, required=True)
    action_reader = reader.sub("action")
    action = _action(action_reader) if action_reader else Action()
    focus = tuple(_string_list(reader, "focus"))
    for item in focus:
        panel = item.split(":", 1)[0]
        if panel not in PANELS:
            raise reader.error("focus", f"'{item}' names no panel; panels are {', '.join(PANELS)}")
    raw_expect = reader.get("expect", list, [])
    expect = []
    for index, raw in enumerate(raw_expect):
        if not isinstance(raw, dict):
            raise reader.error(f"expect[{index}]", "must be a table")
        expect.append(_expectation(_Reader(reader.path, raw, f"expect[{index}].", reader.step)))
    question_reader = reader.sub("question")
    question = _question(question_reader, machine) if question_reader else None
    return LessonStep(title, narration, action, focus, tuple(expect), question)


def _action(reader: _Reader) -> Action:
    reader.check_known(("do", "count", "event", "where", "condition", "console", "vm", "label", "panel",
                        "max_steps"))
    do = reader.choice("do", ACTIONS, required=True)
    count = reader.get("count", int, 1)
    if count < 1:
        raise reader.error("count", "must be at least 1")
    event = reader.choice("event", EVENT_KINDS)
    where = reader.get("where", dict, {})
    if where and event is None:
        raise reader.error("where", "needs 'event' to say which event's fields to match")
    if event is not None:
        _check_event_fields(reader, "where", event, where)
    condition = reader.get("condition", str)
    if condition is not None:
        _parse_condition(reader, "condition", condition)
    console = reader.get("console", str)
    vm = _vm_number(reader)
    label = reader.get("label", str)
    panel = reader.choice("panel", PANELS)
    max_steps = reader.get("max_steps", int, DEFAULT_MAX_STEPS)
    needs = {"run_until": event is not None or condition is not None or console is not None,
             "goto_label": label is not None,
             "breakpoint": label is not None, "toggle_panel": panel is not None}
    if do in needs and not needs[do]:
        missing = {"run_until": "'event', 'condition' or 'console'", "goto_label": "'label'", "breakpoint": "'label'",
                   "toggle_panel": "'panel'"}[do]
        raise reader.error("do", f"'{do}' needs {missing}")
    return Action(do, count, event, dict(where), condition, label, panel, max_steps, console, vm)


def _vm_number(reader: _Reader) -> int:
    vm = int(reader.get("vm", int, 0))
    if not 0 <= vm < 8:
        raise reader.error("vm", "must be a VM number, 0 to 7")
    return vm


def _check_event_fields(reader: _Reader, name: str, kind: str, where: dict[str, Any]) -> None:
    for key in where:
        if key not in _EVENT_FIELDS[kind]:
            raise reader.error(f"{name}.{key}", f"'{kind}' events have no field '{key}'; they have "
                                                f"{', '.join(sorted(_EVENT_FIELDS[kind]))}")


def _parse_condition(reader: _Reader, name: str, text: str) -> tuple[str, str, str]:
    match = _CONDITION.match(text)
    if not match or match.group(1) not in REGISTERS:
        raise reader.error(name, f"'{text}' is not 'REGISTER OP VALUE' (registers: {', '.join(REGISTERS)}; "
                                 "ops: == != < <= > >=)")
    return match.group(1), match.group(2), match.group(3)


def _expectation(reader: _Reader) -> Expectation:
    reader.check_known(("event", "where", "count", "register", "equals", "console", "vm", "halted", "reference",
                        "counter", "at_least", "at_most"))
    event = reader.choice("event", EVENT_KINDS)
    where = reader.get("where", dict, {})
    reference = reader.get("reference", int)
    if reference is not None and reference < 1:
        raise reader.error("reference", "must be at least 1 (the first walk reference of the instruction is 1)")
    if event is not None:
        _check_event_fields(reader, "where", event, where)
    elif reference is not None:
        _check_event_fields(reader, "where", "walk", where)
    elif where:
        raise reader.error("where", "needs 'event' (or 'reference') to say which event's fields to match")
    count = reader.get("count", int)
    register = reader.choice("register", REGISTERS)
    equals = reader.get("equals", (int, str))
    console = reader.get("console", str)
    halted = reader.get("halted", bool)
    counter = reader.get("counter", str)
    at_least, at_most = reader.get("at_least", int), reader.get("at_most", int)
    chosen = [name for name, value in (("event", event), ("register", register), ("console", console),
                                       ("halted", halted), ("reference", reference), ("counter", counter))
              if value is not None]
    if len(chosen) != 1:
        raise reader.error("event", "an expectation checks exactly one of 'event', 'register', 'console', "
                                    "'halted', 'reference', 'counter'")
    if register is not None and equals is None:
        raise reader.error("equals", "is required with 'register'")
    if counter is not None and equals is None and at_least is None and at_most is None:
        raise reader.error("counter", "needs 'equals', 'at_least' or 'at_most'")
    if counter is not None and isinstance(equals, str):
        raise reader.error("equals", "a counter is compared with a number")
    if counter is None and (at_least is not None or at_most is not None):
        raise reader.error("at_least", "'at_least' and 'at_most' go with 'counter'")
    return Expectation(event, dict(where), count, register, equals, console, halted, reference, counter,
                       at_least, at_most, _vm_number(reader))


def _question(reader: _Reader, machine: MachineSetup) -> Question:
    reader.check_known(("prompt", "kind", "choices", "answer", "explanation", "generate", "level", "verify"))
    prompt = reader.get("prompt", str, required=True)
    kind = reader.choice("kind", QUESTION_KINDS, required=True)
    choices = tuple(_string_list(reader, "choices"))
    generate = reader.choice("generate", GENERATORS)
    answer = reader.get("answer", int)
    explanation = reader.get("explanation", str, "")
    level = reader.get("level", int, 1)
    verify = reader.get("verify", str)
    if kind == "choice":
        if len(choices) < 2:
            raise reader.error("choices", "a choice question needs at least two choices")
        if answer is None or not 0 <= answer < len(choices):
            raise reader.error("answer", f"must be the 0-based index of the right choice (0..{len(choices) - 1})")
    elif generate is None and answer is None:
        raise reader.error("answer", f"a {kind} question needs 'answer' (or 'generate')")
    if generate is not None and kind == "choice":
        raise reader.error("generate", "generated questions are 'number' or 'address' questions")
    if generate == "va-index" and not 1 <= level <= machine.config.page_levels:
        raise reader.error("level", f"must be 1..{machine.config.page_levels} (the machine's page_levels)")
    if verify is not None:
        _parse_condition(reader, "verify", f"{verify} == 0")
    return Question(prompt, kind, answer, choices, explanation, generate, level, verify)


# ---------------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Outcome:
    """What a step's action did: the events recorded and whether a run_until target was reached."""

    events: tuple[Event, ...]
    steps_run: int
    reached: bool = True
    revealed: int = 0
    """After a `substep` action: which walk reference of the instruction is shown (1-based; 0 = none)."""
    references: tuple[Event, ...] = ()
    """After a `substep` action: every walk reference of the instruction, in order."""


def resolve_question(question: Question, machine: Any, *, seed: int, step_number: int) -> ResolvedQuestion:
    """Fill in a generated question (OSTEP-style: same seed, same problem) and compute its answer."""
    if question.generate is None:
        assert question.answer is not None
        return ResolvedQuestion(question.prompt, question.kind, question.choices, question.answer,
                                question.explanation)
    rng = random.Random(seed * 1000 + step_number)
    va = rng.randrange(0, 1 << 32) & ~3
    bits = split_levels(machine.config.page_levels)
    level = question.level
    shift = 32 - sum(bits[:level])
    values = {"va-index": (va >> shift) & ((1 << bits[level - 1]) - 1), "va-offset": va & 0xFFF,
              "va-vpn": va >> 12}
    answer = values[question.generate]
    prompt = question.prompt.format(va=f"{va:#010x}", level=level, levels=machine.config.page_levels,
                                    bits=" + ".join(map(str, bits)))
    explanation = question.explanation.format(va=f"{va:#010x}", level=level, answer=answer,
                                              levels=machine.config.page_levels, bits=" + ".join(map(str, bits)))
    return ResolvedQuestion(prompt, question.kind, (), answer, explanation)


def read_register(machine: Any, name: str) -> int:
    """Value of a register name from REGISTERS on `machine` (a Machine or a Hypervisor)."""
    cpu = machine.cpu
    if name.startswith("r") and name[1:].isdigit():
        return int(cpu.regs[int(name[1:])])
    values = {"sp": cpu.regs[8], "pc": cpu.pc, "flags": cpu.flags, "ring": cpu.ring, "steps": cpu.steps,
              "guest_ring": cpu.ring, "guest_if": int(bool(cpu.flags & 0x200)), **cpu.control_registers}
    vcpu = getattr(getattr(machine, "current", None), "vcpu", None)
    if vcpu is not None and getattr(machine, "mode", "hw") != "hw":  # the guest's view under a software VMM
        values.update(guest_ring=vcpu.ring, guest_if=int(vcpu.vif))
    return int(values[name])


def resolve_value(text: str | int, programs: tuple[Program, ...]) -> int:
    """A number, or a label looked up as `program:label` or in every loaded program (kernel first)."""
    if isinstance(text, int):
        return text
    try:
        return int(text, 0)
    except ValueError:
        pass
    scope, _, name = text.rpartition(":")
    for program in programs:
        stem = Path(program.name).stem
        if (not scope or scope == stem) and name in program.symbols:
            return program.symbols[name]
    known = sorted({s for p in programs for s in p.symbols})
    hint = difflib.get_close_matches(name, known, n=1)
    raise KeyError(f"no label '{text}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))


def condition_holds(machine: Any, text: str) -> bool:
    """Evaluate 'REGISTER OP VALUE' (VALUE: number or label) on the machine."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(f"bad condition {text!r}")
    left = read_register(machine, match.group(1))
    right = resolve_value(match.group(3), machine.programs)
    op = match.group(2)
    return {"==": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def event_matches(event: Event, kind: str, where: dict[str, Any], programs: tuple[Program, ...]) -> bool:
    """Whether `event` is of `kind` with every `where` field equal (labels allowed for numeric fields)."""
    if event.kind != kind:
        return False
    for key, wanted in where.items():
        actual = getattr(event, key)
        if isinstance(actual, int) and not isinstance(actual, bool) and isinstance(wanted, str):
            wanted = resolve_value(wanted, programs)
        if actual != wanted:
            return False
    return True


def check_expectations(step: LessonStep, machine: Any, outcome: Outcome) -> list[str]:
    """Human-readable failures of a step's expectations (empty when all hold)."""
    failures = []
    for index, expectation in enumerate(step.expect):
        prefix = f"expect[{index}]"
        try:
            failure = _check_one(expectation, machine, outcome)
        except KeyError as error:
            failure = str(error.args[0])
        if failure:
            failures.append(f"{prefix}: {failure}")
    return failures


def _check_one(expectation: Expectation, machine: Any, outcome: Outcome) -> str | None:
    if expectation.event is not None:
        matching = [e for e in outcome.events
                    if event_matches(e, expectation.event, expectation.where, machine.programs)]
        wanted = f"'{expectation.event}' event" + (
            " with " + ", ".join(f"{k}={v}" for k, v in expectation.where.items()) if expectation.where else "")
        if expectation.count is not None and len(matching) != expectation.count:
            return f"expected {expectation.count} {wanted}(s), the action produced {len(matching)}"
        if expectation.count is None and not matching:
            return f"expected a {wanted}; none in the {outcome.steps_run} step(s) the action ran"
        return None
    if expectation.register is not None:
        assert expectation.equals is not None
        actual = read_register(machine, expectation.register)
        wanted_value = resolve_value(expectation.equals, machine.programs)
        if actual != wanted_value:
            return f"expected {expectation.register} == {expectation.equals} ({wanted_value:#x}), it is {actual:#x}"
        return None
    if expectation.console is not None:
        shown = console_of(machine, expectation.vm)
        if expectation.console not in shown:
            return f"expected the console to contain {expectation.console!r}; it shows {shown!r}"
        return None
    if expectation.counter is not None:
        return _check_counter(expectation, machine)
    if expectation.reference is not None:
        return _check_reference(expectation, machine, outcome)
    if expectation.halted is not None and machine.halted != expectation.halted:
        return f"expected halted = {str(expectation.halted).lower()}, it is {str(machine.halted).lower()}"
    return None


def console_of(machine: Any, vm: int) -> str:
    """VM `vm`'s console (a machine, or a host with one VM: its only console). Raises KeyError if no such VM."""
    vms = getattr(machine, "vms", None)
    if vms is None or vm == 0:
        if vm:
            raise KeyError(f"vm {vm}: this machine runs no VMs")
        return str(machine.console_output)
    if vm >= len(vms):
        raise KeyError(f"vm {vm}: the host runs {len(vms)} VM(s)")
    return str(vms[vm].console_text)


def _check_counter(expectation: Expectation, machine: Any) -> str | None:
    counters = machine.counters()
    name = expectation.counter
    if name not in counters:
        raise KeyError(f"no counter '{name}'; counters: {', '.join(sorted(counters))}")
    value = int(counters[name])
    if expectation.equals is not None and value != expectation.equals:
        return f"expected counter {name} == {expectation.equals}, it is {value}"
    if expectation.at_least is not None and value < expectation.at_least:
        return f"expected counter {name} >= {expectation.at_least}, it is {value}"
    if expectation.at_most is not None and value > expectation.at_most:
        return f"expected counter {name} <= {expectation.at_most}, it is {value}"
    return None


def _check_reference(expectation: Expectation, machine: Any, outcome: Outcome) -> str | None:
    """The walk reference a sub-step revealed: its number, and its fields."""
    if not outcome.revealed:
        return f"expected walk reference {expectation.reference} to be shown; the action was not a sub-step " \
               "that revealed one"
    if outcome.revealed != expectation.reference:
        return (f"expected walk reference {expectation.reference}; the sub-step shows reference "
                f"{outcome.revealed} of {len(outcome.references)}")
    shown = outcome.references[outcome.revealed - 1]
    if not event_matches(shown, "walk", expectation.where, machine.programs):
        fields = ", ".join(f"{key}={getattr(shown, key)}" for key in expectation.where)
        return f"walk reference {outcome.revealed} has {fields}"
    return None
