"""The credential program's loop end to end, in process and seeded
(`benchmarks.online.simulate_program`): 300 operational 2PL items, 40 pretest items of
which 4 are harder by 1.0 for the focal group, 20,000 learners taking a 20-item adaptive
test with 5 pretest items each; the pretest items are calibrated with the operational
items fixed and gated (`delivery.online_gates.calibrate_and_gate`).

The truth is the simulation's: every pretest item without DIF must reach a decision,
the promoted items' RMSE(a) and RMSE(b) against the generating parameters be at most
0.15, and no item with DIF be promoted. The loop takes about 20 s here (printed)."""

import time

import pytest

from benchmarks.online import N_DIF, N_PRETEST, rmse, run_loop, simulate_program
from irtcat.delivery.online_gates import HELD, PROMOTED


@pytest.mark.runs_long
def test_the_loop_promotes_accurate_items_and_holds_those_with_dif():
    started = time.perf_counter()
    program = simulate_program()
    outcome = run_loop(program)
    seconds = time.perf_counter() - started
    print(f"\nonline calibration loop: {seconds:.1f} s "
          f"({len(program.log.response):,} answers)")
    rows = {row["item"]: row for row in outcome.rows}
    assert len(rows) == N_PRETEST and len(program.dif_ids) == N_DIF
    for item in set(program.pretest_ids) - set(program.dif_ids):
        assert rows[item]["decision"] in (PROMOTED, HELD), rows[item]
    promoted = {row["item"] for row in outcome.promoted}
    assert not promoted & set(program.dif_ids)
    for item in program.dif_ids:
        assert rows[item]["decision"] == HELD
        assert not rows[item]["gates"]["dif"]["passed"]
    assert len(promoted) >= 30                     # the gates hold few items without DIF
    assert rmse(outcome, program.truth, "a") <= 0.15
    assert rmse(outcome, program.truth, "b") <= 0.15
