"""A malformed lesson names the file, the step and the field; unknown fields are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.lesson import LessonError, load_lesson

VALID = '''
title = "Traps"
summary = "A privileged instruction in ring 3 faults."
topics = ["traps"]
minutes = 5

[machine]
kernel = true
programs = ["privileged"]

[[steps]]
title = "Boot"
narration = "The kernel boots."
action = { do = "run_until", event = "trap", where = { vector = 13 } }
focus = ["timeline:last"]
expect = [{ event = "trap", where = { vector = 13, from_ring = 3 } }]

[steps.question]
prompt = "Which ring runs the faulting instruction?"
kind = "choice"
choices = ["ring 0", "ring 3"]
answer = 1
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "01-test.toml"
    path.write_text(text)
    return path


def test_valid_lesson_loads(tmp_path: Path) -> None:
    lesson = load_lesson(write(tmp_path, VALID))
    assert lesson.title == "Traps" and len(lesson.steps) == 1
    step = lesson.steps[0]
    assert step.action.do == "run_until" and step.action.where == {"vector": 13}
    assert step.question is not None and step.question.answer == 1


@pytest.mark.parametrize(("edit", "step", "field", "message"), [
    (lambda t: t.replace('minutes = 5', 'minutes = 5\ncolour = "red"'), None, "colour", "unknown field"),
    (lambda t: t.replace('title = "Boot"', 'titel = "Boot"'), 1, "titel", "did you mean 'title'"),
    (lambda t: t.replace('event = "trap", where = { vector = 13 } }', 'event = "trapp" }'), 1, "action.event",
     "did you mean 'trap'"),
    (lambda t: t.replace('where = { vector = 13, from_ring = 3 }', 'where = { vectr = 13 }'), 1,
     "expect[0].where.vectr", "have no field"),
    (lambda t: t.replace('answer = 1', 'answer = 5'), 1, "question.answer", "0-based index"),
    (lambda t: t.replace('focus = ["timeline:last"]', 'focus = ["screen"]'), 1, "focus", "names no panel"),
    (lambda t: t.replace('minutes = 5', 'minutes = "five"'), None, "minutes", "must be an integer"),
    (lambda t: t.replace('do = "run_until"', 'do = "jump"'), 1, "action.do", "is not one of"),
    (lambda t: t.replace('kernel = true', 'kernel = true\npage_levels = 9'), None, "machine.page_levels", "1..4"),
    (lambda t: t.replace('narration = "The kernel boots."\n', ''), 1, "narration", "is required"),
    (lambda t: t.replace('{ event = "trap", where = { vector = 13, from_ring = 3 } }', '{ reference = 0 }'), 1,
     "expect[0].reference", "at least 1"),
    (lambda t: t.replace('{ event = "trap", where = { vector = 13, from_ring = 3 } }',
                         '{ reference = 2, where = { dimenson = "host" } }'), 1, "expect[0].where.dimenson",
     "'walk' events have no field"),
    (lambda t: t.replace('{ event = "trap", where = { vector = 13, from_ring = 3 } }',
                         '{ reference = 2, halted = true }'), 1, "expect[0].event", "exactly one of"),
    (lambda t: t.replace('do = "run_until"', 'do = "substeps"'), 1, "action.do", "did you mean 'substep'"),
    (lambda t: t.replace('programs = ["privileged"]', 'vms = [["hello"], ["hog"]]'), None, "machine.vms",
     "need a VMM"),
    (lambda t: t.replace('programs = ["privileged"]', 'mode = "hw"\nvms = [["hello"], "hog"]'), None,
     "machine.vms", "lists of program names"),
    (lambda t: t.replace('programs = ["privileged"]', 'mode = "hw"\nvms = [["hello"]]\nprograms = ["hog"]'),
     None, "machine.vms", "not 'programs'"),
    (lambda t: t.replace('programs = ["privileged"]', 'mode = "hw"\n[machine.overcommit]\nhost_frames = 64'),
     None, "machine.overcommit", "memory_mode = \"nested\""),
    (lambda t: t.replace('programs = ["privileged"]', 'mode = "hw"\nmemory_mode = "nested"\n'
                         '[machine.overcommit]\nhost_frame = 64'), None, "machine.overcommit.host_frame",
     "did you mean 'host_frames'"),
    (lambda t: t.replace('programs = ["privileged"]', 'mode = "hw"\nmemory_mode = "nested"\n'
                         '[machine.overcommit]\nhost_frames = 0'), None, "machine.overcommit.host_frames",
     "at least 1"),
    (lambda t: t.replace('{ event = "trap", where = { vector = 13, from_ring = 3 } }', '{ counter = "traps" }'), 1,
     "expect[0].counter", "needs 'equals', 'at_least' or 'at_most'"),
    (lambda t: t.replace('{ event = "trap", where = { vector = 13, from_ring = 3 } }',
                         '{ console = "x", at_least = 2 }'), 1, "expect[0].at_least", "go with 'counter'"),
    (lambda t: t.replace('action = { do = "run_until", event = "trap", where = { vector = 13 } }',
                         'action = { do = "run_until", vm = 1 }'), 1, "action.do", "'console'"),
])
def test_errors_name_file_step_and_field(tmp_path: Path, edit, step, field, message) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, edit(VALID))
    with pytest.raises(LessonError) as caught:
        load_lesson(path)
    error = caught.value
    assert error.path == str(path) and error.step == step and error.field_name == field
    assert message in str(error)
    assert str(error).startswith(str(path))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match="not valid TOML"):
        load_lesson(write(tmp_path, "title = "))
    with pytest.raises(LessonError, match="cannot read"):
        load_lesson(tmp_path / "nope.toml")


def test_substep_and_reference_load(tmp_path: Path) -> None:
    """A walk-step action with a count, and an expectation on the revealed reference's walk fields."""
    text = VALID.replace('action = { do = "run_until", event = "trap", where = { vector = 13 } }',
                         'action = { do = "substep", count = 4 }').replace(
        '{ event = "trap", where = { vector = 13, from_ring = 3 } }',
        '{ reference = 5, where = { dimension = "guest", level = 1 } }')
    step = load_lesson(write(tmp_path, text)).steps[0]
    assert step.action.do == "substep" and step.action.count == 4
    assert step.expect[0].reference == 5 and step.expect[0].where == {"dimension": "guest", "level": 1}


def test_several_vms_overcommit_console_and_counters_load(tmp_path: Path) -> None:
    text = VALID.replace('programs = ["privileged"]', 'mode = "hw"\nmemory_mode = "nested"\n'
                         'vms = [["heap", "hello"], ["hog"]]\n[machine.overcommit]\nhost_frames = 96\n'
                         'share_interval = 500').replace(
        'action = { do = "run_until", event = "trap", where = { vector = 13 } }',
        'action = { do = "run_until", console = "pid 1 exited", vm = 1 }').replace(
        '{ event = "trap", where = { vector = 13, from_ring = 3 } }', '{ counter = "pages_shared", at_least = 1 }')
    lesson = load_lesson(write(tmp_path, text))
    machine = lesson.machine
    assert machine.vms == (("heap", "hello"), ("hog",))
    assert machine.overcommit is not None and machine.overcommit.host_frames == 96
    assert machine.overcommit.share_interval == 500 and machine.overcommit.reclaim_interval == 1_000
    step = lesson.steps[0]
    assert (step.action.console, step.action.vm) == ("pid 1 exited", 1)
    assert (step.expect[0].counter, step.expect[0].at_least) == ("pages_shared", 1)


def test_run_until_console_and_counter_expectations_are_checked(tmp_path: Path) -> None:
    from engine.lesson_runner import check_lesson

    text = VALID.replace('programs = ["privileged"]', 'programs = ["hello"]').replace(
        'action = { do = "run_until", event = "trap", where = { vector = 13 } }',
        'action = { do = "run_until", console = "Hello" }').replace(
        '{ event = "trap", where = { vector = 13, from_ring = 3 } }',
        '{ counter = "instructions", at_least = 100 }, { counter = "instructions", at_most = 5 }, '
        '{ counter = "no_such_counter", equals = 1 }, { console = "Hello", vm = 1 }')
    failures = check_lesson(load_lesson(write(tmp_path, text)))
    assert len(failures) == 3, failures
    assert "expect[1]: expected counter instructions <= 5, it is" in failures[0]
    assert "no counter 'no_such_counter'" in failures[1] and "instructions" in failures[1]
    assert "vm 1: this machine runs no VMs" in failures[2]
