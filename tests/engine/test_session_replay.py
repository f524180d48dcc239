"""Rebuilt sessions under exposure control choose as the session they continue, and a
session's step traces come back when it is replayed from its log.

Expected values come from the uninterrupted session itself (simulation truth): the
same seed, answers and exposure decisions must give the same items.
"""

import dataclasses

import numpy as np
import pytest

from irtcat.engine.design import CATDesign, Exposure, Stopping
from irtcat.engine.models import ItemParameters
from irtcat.engine.session import BankTables, Session, replay_traces


def bank(n=60):
    rng = np.random.default_rng(21)
    return ItemParameters.create("2pl", rng.lognormal(0.2, 0.3, n), rng.normal(0.0, 1.0, n))


def sympson_hetter_design(n=60):
    # K = 0.3 for every item: most walks pass over a few items before one is given
    return CATDesign(stopping=Stopping(min_items=12, max_items=12, se=None),
                     exposure=Exposure(method="sympson-hetter",
                                       sympson_hetter=np.full(n, 0.3)))


def answers(seed):
    return np.random.default_rng(seed).integers(0, 2, 64)


def uninterrupted(tables, design, seed):
    session, items, traces = Session(tables, design, seed), [], []
    pattern = answers(seed)
    while (item := session.next_item()) is not None:
        traces.append(session.last_step)
        session.answer(item, int(pattern[len(items)]))
        items.append(item)
    traces.append(session.last_step)
    return items, traces


def continued(tables, design, seed, items, answered, **exposure_decisions):
    """The items of a session rebuilt after its first `answered` answers (with the given
    exposure decisions) and answered on to its end."""
    pattern = answers(seed)
    rebuilt = Session(tables, design, seed, items=items[:answered],
                      responses=[int(r) for r in pattern[:answered]], **exposure_decisions)
    given = list(items[:answered])
    while (item := rebuilt.next_item()) is not None:
        rebuilt.answer(item, int(pattern[len(given)]))
        given.append(item)
    return given


@pytest.mark.parametrize("seed", [3, 8, 13])
def test_a_session_rebuilt_mid_test_under_sympson_hetter_gives_the_same_items(seed):
    # Expected: the uninterrupted session's items. The rebuild gets the answers and the
    # items passed over so far (the traces' `rejected`); without them it would choose
    # again among items the first session had put out of the pool.
    design = sympson_hetter_design()
    tables = BankTables(bank(), design)
    items, traces = uninterrupted(tables, design, seed)
    assert any("rejected" in trace for trace in traces)       # the control did act
    for half in (1, 5, 6, 11):
        removed = [j for trace in traces[:half] for j in trace.get("rejected", [])]
        assert continued(tables, design, seed, items, half, removed=removed) == items


def test_without_the_rejections_a_rebuild_can_choose_differently():
    # The defect the rejections fix (a check that the test above can fail): rebuilt
    # from the answers alone, at least one of these seeds' sessions chooses otherwise.
    design = sympson_hetter_design()
    tables = BankTables(bank(), design)
    differs = []
    for seed in range(3, 13):
        items, _ = uninterrupted(tables, design, seed)
        differs.append(continued(tables, design, seed, items, 6) != items)
    assert any(differs)


def test_item_eligibility_draws_are_kept_by_a_rebuild():
    # Expected: items drawn ineligible at the start are never given (unless no other is
    # left: 40 eligible of 60 here), and a rebuild given the draw continues the same.
    n = 60
    design = CATDesign(stopping=Stopping(min_items=10, max_items=10, se=None),
                       exposure=Exposure(method="item-eligibility", target=0.2))
    tables = BankTables(bank(n), design)
    probability = np.where(np.arange(n) % 3 == 0, 0.0, 1.0)     # every third never eligible
    session = Session.start(tables, design, 5, eligibility=probability)
    assert session.ineligible == tuple(range(0, n, 3))
    pattern, items = answers(5), []
    while (item := session.next_item()) is not None:
        session.answer(item, int(pattern[len(items)]))
        items.append(item)
    assert not set(items) & set(session.ineligible)
    assert continued(tables, design, 5, items, 4, ineligible=session.ineligible) == items


def test_replaying_a_session_from_its_log_gives_its_traces_exactly():
    # Expected: the traces the session wrote as it went (simulation truth), equal as
    # JSON values: same candidates, criterion values, rejections, estimates, stop reason.
    design = sympson_hetter_design()
    tables = BankTables(bank(), design)
    items, traces = uninterrupted(tables, design, 8)
    pattern = [int(r) for r in answers(8)[:len(items)]]
    assert replay_traces(tables, design, 8, items, pattern) == traces
    assert traces[-1]["stop"] == "max_items"
    first = traces[0]
    assert first["eligible"] == 60 and len(first["candidates"]) == 5
    values = [value for _, value in first["candidates"]]
    assert values == sorted(values, reverse=True)
    assert first["item"] in [j for j, _ in first["candidates"]] + first.get("rejected", [])


def test_a_replay_that_disagrees_with_its_log_says_where():
    design = dataclasses.replace(sympson_hetter_design(), exposure=Exposure())
    tables = BankTables(bank(), design)
    items, _ = uninterrupted(tables, design, 4)
    items[2] = next(j for j in range(60) if j not in items)
    with pytest.raises(ValueError, match="step 3"):
        replay_traces(tables, design, 4, items, [int(r) for r in answers(4)[:len(items)]])
