"""Scoring partition by partition (`delivery.bulk_scoring`), here and on a Dask cluster.

Expected values: the same partitions scored in this process (the cluster must give
them bit for bit); the whole data scored at once by `engine.estimate_theta` and
`engine.plausible.draw_plausible_values` (persons are scored from their own answers
alone, and the plausible values' stream is one uniform a draw in person order), equal
to ROUNDING: BLAS kernels group rows in blocks, and where a partition starts moves a
row within its block, which moves the last bits of a sum; and the messages
`itembank.align_responses` gives the same data as a matrix.
"""

import numpy as np
import pytest

from irtcat.delivery.bulk_scoring import score_partitioned
from irtcat.engine import estimate_theta
from irtcat.engine.plausible import draw_plausible_values
from irtcat.engine.simulate import simulate_responses
from irtcat.itembank import DataFormatError, ResponseData, align_responses, bank_from_document
from irtcat.itembank.io import ResponseLog

N_PERSONS = 700
SIZE = 97             # eight partitions, the last of 21 persons
ROUNDING = 1e-12      # largest change seen: 3e-14 (plausible values, one person a partition)


@pytest.fixture(scope="module")
def bank():
    """Eleven 2PL items and one three-category graded item, seeded."""
    rng = np.random.default_rng(8)
    items = [{"id": f"I{j:02d}", "model": "2pl", "a": round(float(rng.lognormal(0, 0.3)), 3),
              "b": round(float(rng.normal()), 3)} for j in range(11)]
    items.append({"id": "G", "model": "grm", "a": 1.2, "b": [-0.5, 0.7]})
    return bank_from_document({"format": "irtcat-bank/1", "items": items})


@pytest.fixture(scope="module")
def log(bank):
    """Simulated answers, a fifth missing, as a long log in shuffled line order: persons
    and items coded in order of first appearance, as the readers code them."""
    rng = np.random.default_rng(9)
    answers = simulate_responses(rng.normal(size=N_PERSONS), bank.params, rng).astype(float)
    answers[rng.random(answers.shape) < 0.2] = np.nan
    answers[5] = np.nan                                          # a person with no answer...
    answers[5, 0] = 1                                            # ...but one
    person, item = np.nonzero(~np.isnan(answers))
    order = rng.permutation(person.size)
    person, item = person[order], item[order]
    person_codes = {p: k for k, p in enumerate(dict.fromkeys(person.tolist()))}
    item_codes = {i: k for k, i in enumerate(dict.fromkeys(item.tolist()))}
    return ResponseLog([f"p{p}" for p in person_codes], [bank.item_ids[i] for i in item_codes],
                       np.array([person_codes[p] for p in person]),
                       np.array([item_codes[i] for i in item]), answers[person, item])


def dense(log):
    responses = np.full((len(log.person_ids), len(log.item_ids)), np.nan)
    responses[log.person_index, log.item_index] = log.response
    return ResponseData(log.person_ids, log.item_ids, responses)


def same(first, second):
    return np.array_equal(first, second, equal_nan=True)


def close(first, second):
    return np.allclose(first, second, rtol=0.0, atol=ROUNDING, equal_nan=True)


@pytest.mark.parametrize("method", ["eap", "map", "ml", "wle", "eapsum"])
def test_partitions_score_as_the_whole_data(bank, log, dask_client, method):
    # Expected: the partitions scored here, bit for bit on the cluster, from the log or
    # from the matrix; estimate_theta on the whole matrix to ROUNDING.
    responses, params, _ = align_responses(dense(log), bank)
    whole = estimate_theta(responses, params, method, prior_mean=0.2, prior_sd=1.1)
    options = {"size": SIZE, "prior_mean": 0.2, "prior_sd": 1.1}
    here = score_partitioned(log, bank, method, **options)
    assert close(here.estimate.theta, whole.theta) and close(here.estimate.se, whole.se)
    assert np.array_equal(here.estimate.bounded, whole.bounded) and here.draws is None
    for there in (score_partitioned(log, bank, method, client=dask_client, **options),
                  score_partitioned(dense(log), bank, method, client=dask_client, **options)):
        assert same(there.estimate.theta, here.estimate.theta)
        assert same(there.estimate.se, here.estimate.se)
        assert np.array_equal(there.estimate.bounded, here.estimate.bounded)


def test_plausible_values_are_the_whole_runs_draws(bank, log, dask_client):
    # Expected: draw_plausible_values on the whole matrix with the same seed, to
    # ROUNDING: every partition draws the whole stream's numbers for its persons; the
    # cluster's partitions bit for bit those drawn here.
    responses, params, _ = align_responses(dense(log), bank)
    whole = draw_plausible_values(responses, params, 3, seed=7)
    here = score_partitioned(log, bank, "pv", size=SIZE, draws=3, seed=7)
    assert close(here.draws, whole.draws)
    assert close(here.estimate.theta, whole.estimate.theta)
    there = score_partitioned(log, bank, "pv", size=SIZE, draws=3, seed=7, client=dask_client)
    assert np.array_equal(there.draws, here.draws)
    other = score_partitioned(log, bank, "pv", size=SIZE, draws=3, seed=8)
    assert not close(other.draws, whole.draws)


def test_bad_logs_get_the_matrix_messages(bank, log):
    # Expected: align_responses' message on the same data as a matrix.
    unknown = ResponseLog(log.person_ids, ["X", *log.item_ids[1:]], log.person_index,
                          log.item_index, log.response)
    graded = log.item_ids.index("I03")
    response = log.response.copy()
    response[log.item_index == graded] = 2.0             # a 2PL item has categories 0..1
    over = ResponseLog(log.person_ids, log.item_ids, log.person_index, log.item_index,
                       response)
    for data in (unknown, over):
        with pytest.raises(DataFormatError) as expected:
            align_responses(dense(data), bank)
        with pytest.raises(DataFormatError) as caught:
            score_partitioned(data, bank, "eap", size=SIZE)
        assert str(caught.value) == str(expected.value)
