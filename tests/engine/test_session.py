"""Tests of one examinee's session (engine.session): its frozen results, the caller's
group keys, and the classification of a session ended early.

Expected values are said next to each: a closed form on the EAP grid
(engine.estimation.estimate_eap, the same grid and prior) or the design's rule.
"""

import dataclasses

import numpy as np
import pytest

from irtcat.engine.design import CATDesign, Classification, Stopping
from irtcat.engine.estimation import estimate_eap
from irtcat.engine.models import ItemParameters
from irtcat.engine.session import BankTables, GroupEstimate, Session, SessionResult


def bank():
    rng = np.random.default_rng(4)
    return ItemParameters.create("2pl", rng.lognormal(0.0, 0.25, 40), rng.normal(0.0, 1.0, 40))


SPRT = CATDesign(stopping=Stopping(min_items=5, max_items=20, se=None,
                                   classification=Classification(cut=-0.5)))


def test_a_session_ended_with_no_answer_has_no_classification():
    # Expected: no decision (0). With no scored answer the likelihood is flat: its ratio
    # at cut +- delta is 1, so the SPRT has no evidence either way, and the start theta
    # (0, above the cut -0.5) is the design's starting point, not a measurement; a
    # decision needs at least one scored answer.
    params = bank()
    session = Session(BankTables(params, SPRT), SPRT, seed=7)
    assert session.next_item() is not None            # the first item was chosen, unanswered
    result = session.result()
    assert result.scored_length == 0 and not result.done
    assert result.decision == 0
    assert result.theta == pytest.approx(0.0, abs=1e-9)   # the prior's mean (closed form)


def test_a_session_ended_early_takes_the_side_of_its_theta():
    # Expected: with scored answers but the SPRT undecided, a session ended early is
    # classified by its EAP against the cut; the EAP is estimate_eap's on the answers.
    params = bank()
    session = Session(BankTables(params, SPRT), SPRT, seed=7)
    pattern = np.full((1, params.n_items), np.nan)
    for response in (1, 0):
        item = session.next_item()
        session.answer(item, response)
        pattern[0, item] = response
    result = session.result()
    eap = estimate_eap(pattern, params)
    assert result.theta == pytest.approx(eap.theta[0], abs=1e-9)
    assert result.decision == (1 if eap.theta[0] >= -0.5 else -1)


def test_group_estimates_come_back_under_the_callers_own_keys():
    # Expected: each group's EAP from that group's answers alone (estimate_eap on the
    # pattern restricted to the group's items); keys of any hashable kind, unchanged.
    params = bank()
    design = CATDesign(stopping=Stopping(min_items=10, max_items=10, se=None))
    session = Session(BankTables(params, design), design, seed=3)
    answers = np.random.default_rng(8)
    while (item := session.next_item()) is not None:
        session.answer(item, int(answers.random() < 0.6))
    low, odd = np.arange(40) < 20, np.arange(40) % 2 == 1
    empty = np.zeros(40, dtype=bool)
    keys = {("standard", "AI-ML"): low, 17: odd, frozenset({"x"}): empty}
    result = session.result(keys)
    assert isinstance(result, SessionResult) and set(result.groups) == set(keys)
    assert len(result.items) == 10 and result.done
    for key, mask in keys.items():
        pattern = np.full((1, 40), np.nan)
        for item, response in zip(result.items, result.responses, strict=True):
            if mask[item]:
                pattern[0, item] = response
        expected = estimate_eap(pattern, params)
        estimate = result.groups[key]
        assert isinstance(estimate, GroupEstimate)
        assert estimate.answers == int(np.sum(mask[list(result.items)]))
        assert estimate.theta == pytest.approx(expected.theta[0], abs=1e-9)
        assert estimate.se == pytest.approx(expected.se[0], abs=1e-9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.theta = 0.0                       # results are frozen


def test_a_replayed_session_continues_as_the_one_answered_step_by_step():
    # Expected: the same next item and estimate as the session that took the answers
    # one at a time (same seed: a session is rebuilt from its log).
    params = bank()
    design = dataclasses.replace(SPRT, stopping=dataclasses.replace(SPRT.stopping,
                                                                    max_items=8))
    tables = BankTables(params, design)
    live = Session(tables, design, seed=11)
    items, responses = [], []
    while (item := live.next_item()) is not None:
        response = len(items) % 2
        live.answer(item, response)
        items.append(item)
        responses.append(response)
        replayed = Session.replay(tables, design, 11, items, responses).result()
        kept = live.result()
        assert (replayed.items, replayed.responses) == (kept.items, kept.responses)
        assert (replayed.done, replayed.decision) == (kept.done, kept.decision)
        assert replayed.theta == pytest.approx(kept.theta, abs=1e-12)
        assert replayed.se == pytest.approx(kept.se, abs=1e-12)
    assert live.result().done and len(items) == 8
