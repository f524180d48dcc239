"""θ-matched Mantel-Haenszel on further sparse draws of refs2's DIF simulation: the EAP
matching against the best matching there is, each person's simulated θ.

Data: refs2/simdif_2x2000x40.csv; truth refs2/simdif_2x2000x40_truth.json (i01-i04
uniform DIF, i07-i40 none; focal θ ~ N(-0.5, 1)) and the simulated θ of every person,
refs2/simdif_2x2000x40_theta.csv. Each draw keeps 30 of every person's 40 answers.

Whether i02 and i03 reach ETS class B on a draw is sampling noise, not matching: on
this sample their deltas matched on the true θ with complete data are -1.06 and -1.07,
and over 30 draws (benchmarks/dif_sparse.py, seeds 1000-1029) the true-θ matching
itself keeps all four uniform items at B or C with at most 2 false flags on 16 draws
only (the EAP matching: 18 from the bank, 14 from a pooled calibration). What the
matching must do is give the deltas the true θ gives: over those 30 draws the EAP
delta minus the true-θ delta had a mean within 0.03 of 0 and an SD of 0.03-0.06 per
uniform item, and the mean over the 34 items without DIF an SD of 0.03 per draw.
"""

import json
import pathlib

import numpy as np
import pytest

from irtcat.calibration.dif import eap_matching, mh_dif_theta
from irtcat.engine import ItemParameters
from irtcat.itembank.io import read_responses

REFS2 = pathlib.Path(__file__).resolve().parents[1] / "data" / "refs2"
TRUTH = json.loads((REFS2 / "simdif_2x2000x40_truth.json").read_text())
UNIFORM = [int(item[1:]) - 1 for item in TRUTH["dif_items"]["uniform"]]     # i01-i04
NONE = [int(item[1:]) - 1 for item in TRUTH["dif_items"]["none"]]           # i07-i40
SEEDS = range(2001, 2006)     # numpy Generator seeds of the draws, none used elsewhere


@pytest.fixture(scope="module")
def draws():
    """(per draw: (EAP-matched deltas, true-θ-matched deltas, EAP ETS classes), each
    (n_items,); the EAP from the simulation's reference-group parameters (as
    `irtcat dif --bank`), prior N(0, 1); complete-data deltas matched on the true θ)."""
    data = read_responses(REFS2 / "simdif_2x2000x40.csv", group="group")
    focal = np.array([code == "1" for code in data.groups])
    true_theta = np.loadtxt(REFS2 / "simdif_2x2000x40_theta.csv", delimiter=",",
                            skiprows=1, usecols=2)
    bank = ItemParameters.create("2pl", [item["reference"]["a"] for item in TRUTH["items"]],
                                 np.array([[item["reference"]["b"]] for item in TRUTH["items"]]))
    complete = mh_dif_theta(data.responses, focal, data.item_ids, lambda used: true_theta,
                            purify=True)
    results = []
    for seed in SEEDS:
        keep = np.random.default_rng(seed).permuted(
            np.broadcast_to(np.arange(40) < 30, data.responses.shape), axis=1)
        sparse = np.where(keep, data.responses, np.nan)
        matched = mh_dif_theta(sparse, focal, data.item_ids, eap_matching(sparse, bank),
                               purify=True)
        ideal = mh_dif_theta(sparse, focal, data.item_ids, lambda used: true_theta,
                             purify=True)
        results.append((np.array([r.delta_mh for r in matched.items]),
                        np.array([r.delta_mh for r in ideal.items]),
                        [r.ets_class for r in matched.items]))
    return results, np.array([r.delta_mh for r in complete.items])


def test_eap_matching_gives_the_deltas_of_the_true_theta(draws):
    gaps = np.array([matched - ideal for matched, ideal, _ in draws[0]])    # (draws, items)
    # each draw: within 4 SDs (0.05) of the true-θ delta on the uniform items
    assert np.abs(gaps[:, UNIFORM]).max() < 0.2, gaps[:, UNIFORM].round(3)
    # the mean over the 5 draws: no bias beyond 3 SDs of a 5-draw mean (0.05 / sqrt 5)
    assert np.abs(gaps[:, UNIFORM].mean(axis=0)).max() < 0.07, gaps[:, UNIFORM].mean(axis=0)
    # the 34 items without DIF: their mean gap within 3 SDs (0.03) on every draw
    assert np.abs(gaps[:, NONE].mean(axis=1)).max() < 0.09, gaps[:, NONE].mean(axis=1)


def test_the_large_uniform_dif_is_found_on_every_draw(draws):
    # truth: i01 and i04 have b + 0.6 in the focal group with a = 1.07 and 1.29, true
    # deltas -2.35 a 0.6 = -1.51 and -1.82; their sparse deltas stayed below -1.10 and
    # -1.62 on all 30 draws of the benchmark
    for _, _, classes in draws[0]:
        assert classes[UNIFORM[0]] in "BC" and classes[UNIFORM[3]] in "BC", classes[:4]


def test_the_borderline_items_sit_where_the_true_theta_puts_them(draws):
    # i02 and i03: matched on the true θ with complete data, -1.06 and -1.07 (the
    # sample's own DIF; truth -1.19 and -1.27): each draw's class is decided by which
    # answers were kept (SD 0.10 per draw), the mean over draws is what matching can get
    # right. Bounds: 3 SDs of a 5-draw mean (0.10 / sqrt 5).
    per_draw, complete = draws
    matched = np.array([draw[0] for draw in per_draw])[:, UNIFORM[1:3]]
    ideal = np.array([draw[1] for draw in per_draw])[:, UNIFORM[1:3]]
    assert np.abs(matched.mean(axis=0) - ideal.mean(axis=0)).max() < 0.05
    assert np.abs(matched.mean(axis=0) - complete[UNIFORM[1:3]]).max() < 0.14
