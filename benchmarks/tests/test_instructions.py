"""``make bench-instructions`` without valgrind: every side builds, passes its checks and runs its
measured region for a few requests; a broken stack fails; the summary arithmetic is right."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import (
    _callgrind_region,
    _driver,
    _hand,
    _instr_checks,
    _instr_child,
    _instr_groups,
    _instr_sides,
    instructions,
    stacks,
)

SIDES = sorted(_instr_groups.sides().values(), key=lambda side: side.key)
(TRACE,) = [delta for delta in _instr_groups.DELTAS if delta.key == "trace"]


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    with stacks.saved_loggers():
        yield


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the callgrind region library")
    return _callgrind_region.build(cc, tmp_path_factory.mktemp("region"))


@pytest.fixture
def fresh_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The loop driver's persistent loop, but this test's own (closed afterwards)."""
    loop = asyncio.new_event_loop()
    monkeypatch.setattr(_driver, "_LOOP", loop)
    yield
    loop.close()


def _variant(side: _instr_sides.Side) -> str:
    import fastmw

    if not side.is_fastmw:
        return "reference"
    return "compiled" if fastmw.COMPILED else "pure"


@pytest.mark.usefixtures("fresh_loop")
@pytest.mark.parametrize("side", SIDES, ids=[side.key for side in SIDES])
def test_every_side_is_checked_and_measured(side: _instr_sides.Side, region: Path) -> None:
    result = _instr_child.measure(side, _variant(side), requests=3, warmup=1, library=str(region))
    assert result["side"] == side.key
    assert result["requests"] == 3
    assert result["warnings"] == []


@pytest.mark.usefixtures("fresh_loop")
def test_a_stack_answering_wrongly_fails(region: Path) -> None:
    wrong = _instr_sides.Side("ref:wrong", "echoes nothing", _hand.HandTiming, _instr_sides.REQUEST_ID)
    with pytest.raises(AssertionError, match="x-request-id"):
        _instr_child.measure(wrong, "reference", requests=3, warmup=1, library=str(region))


@pytest.mark.usefixtures("fresh_loop")
def test_an_error_middleware_that_does_not_answer_500_fails() -> None:
    verify = _instr_checks.verify_error(lambda app: app)  # no error handling at all
    with pytest.raises(AssertionError, match="status 500"):
        verify()


def test_jobs_measure_each_stack_once_plus_the_repeats() -> None:
    jobs = instructions.jobs(_instr_groups.GROUPS, repeat=True)
    names = [job.name for job in jobs]
    assert len(names) == len(set(names))
    assert jobs[0].side is _instr_groups.BARE
    assert sum(job.side is _instr_groups.HAND_FIVE for job in jobs) == 1  # shared by two groups
    for group in _instr_groups.GROUPS:
        assert instructions.Job(group.fastmw, "compiled") in jobs
        assert instructions.Job(group.fastmw, "pure") in jobs
    assert [job.repeat for job in jobs].count(1) == 2


def _measured(per_request: dict[tuple[_instr_sides.Side, str], int]) -> dict[instructions.Job, instructions.Measured]:
    """Runs of 100 requests counting ``per_request`` instructions each, per (side, variant)."""
    return {
        instructions.Job(side, variant): instructions.Measured(
            instructions.Job(side, variant), count * 100, 100, {}, 0.0
        )
        for (side, variant), count in per_request.items()
    }


def test_summary_ratios_are_overheads_over_bare() -> None:
    group = _instr_groups.GROUPS[0]
    per_request = {(_instr_groups.BARE, "reference"): 10, (group.fastmw, "compiled"): 20}
    per_request |= {(group.fastmw, "pure"): 110, (group.reference, "reference"): 210}
    measured = _measured(per_request)
    [row] = instructions.summarize([group], measured)
    assert (row["fastmw_compiled"], row["fastmw_pure"], row["reference_over_bare"]) == (10, 100, 200)
    assert row["ratio"] == 0.05
    assert group.target is not None and row["holds"] is (0.05 <= group.target)
    text = instructions.table([row], instructions.pure_full_stack([row]), 10, 100, 1)
    assert group.title in text


def test_rows_are_medians_over_the_seeds_of_the_difference_under_one_seed() -> None:
    group = _instr_groups.GROUPS[0]
    # Under seed 1 the bare app and the stack both cost more; under seed 2 the stack hits a collision.
    per_seed = {0: (10, 20), 1: (12, 23), 2: (10, 90)}
    measured = {}
    for seed, (bare, stack) in per_seed.items():
        for side, variant, count in (
            (_instr_groups.BARE, "reference", bare),
            (group.fastmw, "compiled", stack),
            (group.fastmw, "pure", stack),
            (group.reference, "reference", bare + 100),
        ):
            job = instructions.Job(side, variant, seed=seed)
            measured[job] = instructions.Measured(job, count * 100, 100, {}, 0.0)
    assert instructions.seeds_of(measured) == [0, 1, 2]
    [row] = instructions.summarize([group], measured)
    assert (row["fastmw_compiled"], row["reference_over_bare"]) == (11, 100)  # median of 10, 11, 80
    assert [job.seed for job in instructions.jobs([group], repeat=False, seeds=3)].count(2) == 4  # bare + 3 sides


@pytest.mark.usefixtures("fresh_loop")
def test_the_trace_checks_fail_on_the_wrong_stack() -> None:
    delta = TRACE
    with pytest.raises(AssertionError, match="sent trace continued"):
        _instr_checks.verify_trace(delta.base.build, traced=True)()
    with pytest.raises(AssertionError, match="no current trace"):
        _instr_checks.verify_trace(delta.with_stage.build, traced=False)()


def test_jobs_measure_both_sides_of_a_delta_compiled_and_pure_under_every_seed() -> None:
    delta = TRACE
    jobs = instructions.jobs([], repeat=False, seeds=3, deltas=[delta])
    for seed in range(3):
        for side in (delta.base, delta.with_stage):
            assert side.extra_headers == _driver.TRACE_HEADERS  # the same request on both sides
            for variant in ("compiled", "pure"):
                assert instructions.Job(side, variant, seed=seed) in jobs
    assert len(jobs) == 3 * 5  # bare + two sides x two variants, per seed


def test_a_delta_is_the_median_over_the_seeds_of_the_difference_under_one_seed() -> None:
    delta = TRACE
    # (base, with the stage) per request and seed; the medians of the sides alone (200, 1_400)
    # would give 1_200, the median of the per-seed differences is 1_300.
    per_seed = {
        "compiled": {0: (100, 1_400), 1: (200, 1_500), 2: (900, 1_200)},
        "pure": {0: (1_000, 4_000), 1: (1_100, 4_200), 2: (1_200, 4_300)},
    }
    measured = {}
    for variant, counts in per_seed.items():
        for seed, (base, with_stage) in counts.items():
            for side, count in ((_instr_groups.BARE, 10), (delta.base, base), (delta.with_stage, with_stage)):
                job = instructions.Job(side, "reference" if side is _instr_groups.BARE else variant, seed=seed)
                measured[job] = instructions.Measured(job, count * 100, 100, {}, 0.0)
    [row] = instructions.summarize_deltas([delta], measured)
    assert row["compiled_per_seed"] == [1_300, 1_300, 300]
    assert (row["compiled"], row["pure"], row["pure_per_seed"]) == (1_300, 3_100, [3_000, 3_100, 3_100])
    assert row["holds"] is (1_300 <= delta.budget)
    text = instructions.delta_table([row])
    assert delta.title in text and "1,300" in text and "3,100" in text


@pytest.mark.usefixtures("fresh_loop")
@pytest.mark.parametrize("delta", _instr_groups.DELTAS, ids=[delta.key for delta in _instr_groups.DELTAS])
def test_a_deltas_two_sides_are_checked_and_measured_in_one_process(delta: _instr_sides.Delta, region: Path) -> None:
    sides = (delta.base, delta.with_stage)
    results = _instr_child.measure_pair(sides, _variant(delta.base), requests=5, warmup=1, library=str(region))
    assert [result["side"] for result in results] == [delta.base.key, delta.with_stage.key]
    assert [(result["requests"], result["blocks"], result["warnings"]) for result in results] == [(5, 4, [])] * 2


@pytest.mark.usefixtures("fresh_loop")
def test_a_pair_with_a_side_answering_wrongly_fails(region: Path) -> None:
    wrong = _instr_sides.Side("ref:wrong", "echoes nothing", _hand.HandTiming, _instr_sides.REQUEST_ID)
    right = _instr_sides.Side("ref:right", "times", _hand.HandTiming, _instr_sides.TIMING)
    with pytest.raises(AssertionError, match="x-request-id"):
        _instr_child.measure_pair((right, wrong), "reference", requests=3, warmup=1, library=str(region))


def test_blocks_split_the_requests_evenly() -> None:
    assert _instr_child.blocks(2000) == [500] * 4
    assert _instr_child.blocks(10) == [3, 3, 2, 2]
    assert _instr_child.blocks(2) == [1, 1]


def test_a_deltas_sides_share_one_child_per_variant_repeat_and_seed() -> None:
    delta = TRACE
    group = _instr_groups.GROUPS[0]
    todo = instructions.jobs([group], repeat=False, seeds=2, deltas=[delta])
    units = instructions.units(todo)
    flat = [job for unit in units for job in unit]
    assert len(flat) == len(todo) and set(flat) == set(todo)  # each job once
    pairs = [unit for unit in units if len(unit) == 2]
    assert len(pairs) == 2 * 2  # compiled and pure, two seeds
    for base, with_stage in pairs:
        assert (base.side, with_stage.side) == (delta.base, delta.with_stage)
        assert (base.variant, base.repeat, base.seed) == (with_stage.variant, with_stage.repeat, with_stage.seed)
    # A side whose partner is not wanted runs alone.
    assert instructions.units([instructions.Job(delta.with_stage, "pure")]) == [
        (instructions.Job(delta.with_stage, "pure"),)
    ]
    # With only deltas, the determinism check repeats the first delta's whole pair.
    repeated = [job for job in instructions.jobs([], repeat=True, deltas=[delta]) if job.repeat]
    assert [unit for unit in instructions.units(repeated) if len(unit) == 2] == [
        (instructions.Job(delta.base, "compiled", 1), instructions.Job(delta.with_stage, "compiled", 1))
    ]


CALLGRIND_PAIR = """\
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 0

ob=(1) /lib/region.so
fl=(1) ???
fn=(1) fastmw_bench_measured_a
0 3
cfl=(2) ???
cfn=(2) python_work
calls=2 0
0 100
fn=(3) fastmw_bench_measured_b
0 2
cfn=(2)
calls=1 0
0 40
fn=(2)
0 140
fn=(1)
+1 1

totals: 146
"""


def test_a_pairs_totals_are_its_toggle_targets_inclusive_counts(tmp_path: Path) -> None:
    out = tmp_path / "pair.callgrind"
    out.write_text(CALLGRIND_PAIR)
    assert instructions.pair_totals(out) == (104, 42)
    out.write_text(CALLGRIND_PAIR.replace("totals: 146", "totals: 150"))
    with pytest.raises(RuntimeError, match="do not add up"):
        instructions.pair_totals(out)


def test_callgrind_total_reads_the_totals_line(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_text("events: Ir\nsummary: 0\nfn=(1) x\n0 5\ntotals: 12345\n")
    assert instructions.callgrind_total(out) == 12345


def test_a_group_without_a_target_is_compared_not_held() -> None:
    (group,) = [group for group in _instr_groups.GROUPS if group.key == "access-log-stdlib"]
    assert group.target is None
    per_request = {(_instr_groups.BARE, "reference"): 10, (group.fastmw, "compiled"): 40}
    per_request |= {(group.fastmw, "pure"): 110, (group.reference, "reference"): 40}
    measured = _measured(per_request)
    [row] = instructions.summarize([group], measured)
    assert (row["ratio"], row["holds"]) == (1.0, None)
    line = instructions.table([row], None, 10, 100, 1).splitlines()[-1]
    assert line.endswith("| 1.000x | 3.333x | none | - |"), line
