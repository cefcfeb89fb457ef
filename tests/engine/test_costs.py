"""The cost model reproduces the ordering of Adams and Agesen's nanobenchmarks (ASPLOS 2006)."""

from __future__ import annotations

import pytest

from engine.costs import CostModel
from engine.nanobench import BENCHMARKS, cost_per_operation, table


@pytest.fixture(scope="module")
def costs() -> dict[str, dict[str, float]]:
    return table(repetitions=10)


def test_syscall_hw_is_native_and_bt_pays_about_2000(costs: dict[str, dict[str, float]]) -> None:
    c = costs["syscall"]
    assert c["hw"] == c["native"] < c["bt"]
    assert 1500 < c["bt"] - c["native"] < 4000
    assert c["trap"] > c["bt"], "trap-and-emulate pays for four transitions"


def test_port_io_bt_is_cheapest_and_hw_dearest(costs: dict[str, dict[str, float]]) -> None:
    c = costs["in"]
    assert c["bt"] < c["native"] < c["hw"]


def test_call_ret_costs_extra_only_in_translated_code(costs: dict[str, dict[str, float]]) -> None:
    c = costs["call/ret"]
    assert c["hw"] == c["native"] < c["bt"]


def test_divzero_and_pgfault_orderings(costs: dict[str, dict[str, float]]) -> None:
    assert costs["divzero"]["native"] <= costs["divzero"]["hw"] < costs["divzero"]["bt"]
    assert costs["pgfault"]["native"] < costs["pgfault"]["bt"] < costs["pgfault"]["hw"]


def test_costs_are_adjustable() -> None:
    bench = next(b for b in BENCHMARKS if b.name == "in")
    cheap_exits = CostModel(hw_exit=10)
    assert cost_per_operation("hw", bench, 5, cheap_exits) < cost_per_operation("native", bench, 5)


def test_page_table_writes_native_much_less_than_bt_much_less_than_hw(costs: dict[str, dict[str, float]]) -> None:
    c = costs["ptemod"]
    assert c["native"] * 20 < c["bt"] and c["bt"] * 10 < c["hw"]
