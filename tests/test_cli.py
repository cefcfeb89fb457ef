"""The headless command line: trace (text and JSON), compare, asm errors, lessons, version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vizvm.__main__ import main


def test_trace_json_is_one_event_per_line_with_step_kind_and_world(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "hello", "--json", "--steps", "3000", "--mode", "trap"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all("step" in line and "kind" in line for line in lines)
    assert lines[-1]["kind"] == "summary" and lines[-1]["format"] == 1 and lines[-1]["mode"] == "trap"
    worlds = {line["world"] for line in lines[:-1]}
    assert {"vmm", "guest kernel"} <= worlds
    steps = [line["step"] for line in lines[:-1]]
    assert steps == sorted(steps)


def test_trace_runs_the_kernel_to_completion_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--kinds", "halt", "--steps", "200000"]) == 0
    out = capsys.readouterr().out
    assert "halt: reason=power off" in out and "Hello from user space!" in out


def test_trace_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    main(["trace", "pagefault", "--json", "--steps", "5000"])
    first = capsys.readouterr().out
    main(["trace", "pagefault", "--json", "--steps", "5000"])
    assert capsys.readouterr().out == first


def test_trace_bare_program_and_assembler_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.s"
    good.write_text("mov r1, 65\nout 0x10, r1\nout 0xf4, r0\n")
    assert main(["trace", str(good)]) == 0
    assert "console output:\nA" in capsys.readouterr().out
    bad = tmp_path / "bad.s"
    bad.write_text("mov r1, 65\nmvo r2, r1\n")
    assert main(["trace", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:1: error" in err and "^" in err
    assert main(["trace", str(tmp_path / "missing.s")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_compare_reports_equivalence_and_counters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "hello", "--modes", "native,trap,hw", "--memory", "shadow"]) == 0
    out = capsys.readouterr().out
    assert "equivalent to native" in out and "NO" not in out.split("cycles (cost")[0]
    assert "hidden_faults" in out and "trap-and-emulate" in out
    assert main(["compare", "--modes", "native,warp"]) == 1


def test_lessons_list_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lessons"]) == 0
    assert "01-privileged-instructions" in capsys.readouterr().out
    assert main(["lessons", "check", "lessons/02-system-calls.toml"]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_solve_prints_questions_with_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lesson", "03", "--solve", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "Q:" in out and "A:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and "vizvm 0.1.0" in capsys.readouterr().out


def test_asm_defines_select_the_paravirtual_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asm", "engine/programs/kernel.s", "-D", "PARAVIRT"]) == 0
    paravirtual = capsys.readouterr().out
    assert main(["asm", "engine/programs/kernel.s"]) == 0
    native = capsys.readouterr().out
    assert "hypercall" in paravirtual and "hypercall" not in native.replace("; ", "")
    assert "PRV" in native and " PRV " not in paravirtual


def test_software_tlb_option_for_trace_and_compare(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "hello", "--tlb", "software", "--mode", "trap", "--json", "--steps", "200000",
                 "--kinds", "vmm-tlbwr,trap"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    writes = [line for line in lines if line["kind"] == "vmm-tlbwr"]
    assert writes and all(line["host_frame"] != line["guest_frame"] for line in writes)
    assert lines[-1]["counters"]["tlbwr_emulated"] == len(writes)
    assert "Hello from user space!" in lines[-1]["console"]
    assert main(["compare", "pagefault", "--tlb", "software"]) == 0  # the default modes, without hw
    out = capsys.readouterr().out
    assert "hardware assist" not in out and "tlbwr_emulated" in out and "NO" not in out.split("cycles (cost")[0]
    assert main(["trace", "hello", "--tlb", "software", "--mode", "hw"]) == 1
    assert "hardware assist" in capsys.readouterr().err


def test_trace_several_vms_on_an_overcommitted_host(capsys: pytest.CaptureFixture[str]) -> None:
    """--vms 2 --overcommit 120: two identical guests share 120 frames; each VM's console is printed."""
    assert main(["trace", "hello", "--mode", "hw", "--vms", "2", "--overcommit", "120", "--steps", "400000",
                 "--kinds", "share,vm-stop"]) == 0
    out = capsys.readouterr().out
    assert "share: vm=" in out and out.count("vm-stop:") == 2
    assert "console output (vm0: power off):" in out and "console output (vm1: power off):" in out
    assert out.count("Hello from user space!") == 2
    assert "pages_shared=" in out and "host_frames_used=0" in out
    for bad, message in ((["--vms", "2"], "need a VMM"), (["--mode", "hw", "--vms", "9"], "1 to 8"),
                         (["--mode", "hw", "--memory", "shadow", "--overcommit", "64"], "needs memory_mode='nested'")):
        assert main(["trace", "hello", *bad]) == 1
        assert message in capsys.readouterr().err
