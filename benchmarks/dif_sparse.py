"""θ-matched Mantel-Haenszel on sparse data: how often it meets the acceptance, over draws.

The data are refs2's DIF simulation (simdif_2x2000x40, truth file: i01-i04 uniform DIF,
i05-i06 non-uniform, i07-i40 none; focal θ ~ N(-0.5, 1), reference N(0, 1)). Each draw
keeps 30 of every person's 40 answers at random (numpy Generator(seed), the same
construction as tests/cli/test_dif.py) and runs `calibration.dif.mh_dif_theta` with
purification, matched three ways:

- ``pooled``: EAP θ from a 2PL calibration of the sparse data (as `irtcat dif --model 2pl`);
- ``bank``: EAP θ from the simulation's reference-group parameters, population N(0, 1)
  (as `irtcat dif --bank`);
- ``true θ``: each person's simulated θ (refs2/simdif_2x2000x40_theta.csv), the matching
  no estimate can beat: what is left is the sampling noise of the answers kept;
- ``bank, group priors``: the alternative not taken, EAP with each group's own prior
  (the truth's N(0, 1) and N(-0.5, 1)): at equal EAP the focal persons then have the
  higher scores, and the items without DIF lean towards the focal group.

A draw passes when i01-i04 are in ETS class B or C and at most 2 of i07-i40 are flagged
(issue 15's acceptance). Reported per matching: the pass rate, how many draws fail on a
uniform item in class A and how many on false flags, each uniform item's mean delta
(sd over draws), the mean delta of the 34 items without DIF, and the complete-data
deltas (total score, as difR) the draws are compared with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from irtcat.calibration.dif import eap_matching, mh_dif_score, mh_dif_theta
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine import ItemParameters
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank.io import ResponseData, read_responses

REFS2 = Path(__file__).resolve().parents[1] / "tests" / "data" / "refs2"
DRAWS = 30
FIRST_SEED = 1000
KEPT = 30


def simulation():
    """(ResponseData, bool focal (n_persons,), true θ (n_persons,), truth document)."""
    data = read_responses(REFS2 / "simdif_2x2000x40.csv", group="group")
    theta = np.loadtxt(REFS2 / "simdif_2x2000x40_theta.csv", delimiter=",", skiprows=1,
                       usecols=2)
    truth = json.loads((REFS2 / "simdif_2x2000x40_truth.json").read_text())
    return data, np.array([code == "1" for code in data.groups]), theta, truth


def sparse_draw(responses, seed, kept=KEPT):
    """`responses` (n_persons, n_items) with `kept` answers per person kept at random."""
    keep = np.random.default_rng(seed).permuted(
        np.broadcast_to(np.arange(responses.shape[1]) < kept, responses.shape), axis=1)
    return np.where(keep, responses, np.nan)


def judge(analysis, truth):
    """(passes, uniform items' deltas, a uniform item in class A, false flags)."""
    by_item = {result.item: result for result in analysis.items}
    uniform = [by_item[item] for item in truth["dif_items"]["uniform"]]
    false_flags = [item for item in truth["dif_items"]["none"] if by_item[item].flagged]
    in_a = any(result.ets_class not in ("B", "C") for result in uniform)
    null_deltas = [by_item[item].delta_mh for item in truth["dif_items"]["none"]]
    return (not in_a and len(false_flags) <= 2, [r.delta_mh for r in uniform], in_a,
            false_flags, float(np.mean(null_deltas)))


def _matchings(data, sparse, theta, truth):
    """{name: estimate(used) -> θ (n_persons,)} of one draw."""
    bank = ItemParameters.create(
        "2pl", [item["reference"]["a"] for item in truth["items"]],
        np.array([[item["reference"]["b"]] for item in truth["items"]]))
    document, _ = calibrate_document(ResponseData(data.person_ids, data.item_ids, sparse),
                                     "2pl", fit=False)
    population = document["population"]
    focal = np.array([code == "1" for code in data.groups])
    reference_eap = eap_matching(sparse, bank)
    focal_eap = eap_matching(sparse, bank, prior_mean=-0.5, prior_sd=1.0)
    return {"pooled": eap_matching(sparse, parameters_from_entries(document["items"]),
                                   prior_mean=population["mean"],
                                   prior_sd=population["sd"]),
            "bank": reference_eap,
            "true θ": lambda used: theta,
            "bank, group priors": lambda used: np.where(focal, focal_eap(used),
                                                         reference_eap(used))}


def study(draws=DRAWS, first_seed=FIRST_SEED, verbose=False):
    """{matching: list of `judge` tuples, one per draw} over seeds first_seed.. ."""
    data, focal, theta, truth = simulation()
    outcomes = {}
    for seed in range(first_seed, first_seed + draws):
        sparse = sparse_draw(data.responses, seed)
        for name, estimate in _matchings(data, sparse, theta, truth).items():
            outcome = judge(mh_dif_theta(sparse, focal, data.item_ids, estimate, purify=True),
                            truth)
            outcomes.setdefault(name, []).append(outcome)
            if verbose:
                passes, deltas, _, false_flags, _ = outcome
                print(seed, name, passes, np.round(deltas, 3), false_flags, flush=True)
    return outcomes


def run(draws=DRAWS):
    data, focal, _, truth = simulation()
    complete = judge(mh_dif_score(data.responses, focal, data.item_ids, purify=True), truth)
    rows = [("complete data, total score (difR's difMH)", "1 / 1", "", "",
             " ".join(f"{delta:.2f}" for delta in complete[1]), f"{complete[4]:+.3f}")]
    for name, outcomes in study(draws).items():
        deltas = np.array([outcome[1] for outcome in outcomes])
        rows.append((
            f"{KEPT} of 40 answers, θ-matched, {name}",
            f"{sum(outcome[0] for outcome in outcomes)} / {len(outcomes)}",
            str(sum(outcome[2] for outcome in outcomes)),
            str(sum(len(outcome[3]) > 2 for outcome in outcomes)),
            " ".join(f"{mean:.2f} ({sd:.2f})" for mean, sd in zip(deltas.mean(axis=0),
                                                                  deltas.std(axis=0),
                                                                  strict=True)),
            f"{np.mean([outcome[4] for outcome in outcomes]):+.3f}"))
    header = ("data and matching", "draws passing", "uniform item in A",
              "> 2 false flags", "delta i01-i04: mean (sd)", "mean delta, no-DIF items")
    return [(f"θ-matched Mantel-Haenszel on sparse DIF data ({draws} draws, seeds "
             f"{FIRST_SEED}-{FIRST_SEED + draws - 1}, purification)", header, rows)]
