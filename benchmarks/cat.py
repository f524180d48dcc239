"""Adaptive testing: accuracy and speed against catsim (same run), exposure, content, steps.

The acceptance bank of issue 4: 300 2PL items, a ~ lognormal(0, 0.25),
b ~ N(0, 1), 3,000 simulees theta ~ N(0, 1). The bank is drawn for six seeds
to show how much the figures depend on the bank.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from irtcat.engine import ItemParameters
from irtcat.engine.design import (
    CATDesign,
    Classification,
    Content,
    ContentRule,
    Exposure,
    Scoring,
    Selection,
    Stopping,
)
from irtcat.engine.session import BankTables, Session
from irtcat.engine.simulate import run_cat, simulate_responses, tune_sympson_hetter

from .peers import run_peer

N_ITEMS, N_SIMULEES = 300, 3000
FIXED_20 = Stopping(min_items=20, max_items=20, se=None)
RANDOM = Selection(method="random")
ML = Scoring(method="ml")
DESIGNS = {
    "MFI + EAP, 20 items": CATDesign(stopping=FIXED_20),
    "random, 20 items": CATDesign(selection=RANDOM, stopping=FIXED_20),
    "MFI + EAP, SE < 0.30 (5 to 40 items)": CATDesign(
        stopping=Stopping(min_items=5, max_items=40, se=0.3)),
}
# catsim scores by maximum likelihood: the same designs scored by ML on our side too.
ML_DESIGNS = {
    "MFI + ML, 20 items": CATDesign(scoring=ML, stopping=FIXED_20),
    "random + ML, 20 items": CATDesign(selection=RANDOM, scoring=ML, stopping=FIXED_20),
}

_CATSIM = """
from catsim.simulation import Simulator
from catsim.initialization import FixedPointInitializer
from catsim.selection import MaxInfoSelector, RandomSelector
from catsim.estimation import NumericalSearchEstimator
from catsim.stopping import MinErrorStopper, TestLengthStopper
items = inputs['items']
theta = inputs['theta']
selector = RandomSelector() if inputs['random'][0] else MaxInfoSelector()
if inputs['se'][0] > 0:
    stopper = MinErrorStopper(float(inputs['se'][0]), min_items=5, max_items=40)
else:
    stopper = TestLengthStopper(min_items=20, max_items=20)
simulator = Simulator(items, theta, FixedPointInitializer(0.0), selector,
                      NumericalSearchEstimator(), stopper, seed=1)
started = time.perf_counter()
simulator.simulate()
seconds = time.perf_counter() - started
estimate = np.array([e[-1] for e in simulator.estimations])
lengths = [len(a) for a in simulator.administered_items]
result = {'seconds': seconds, 'rmse': float(np.sqrt(np.mean((estimate - theta) ** 2))),
          'mean_length': float(np.mean(lengths))}
"""


def _bank(seed, sd_a=0.25):
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0.0, sd_a, N_ITEMS), rng.normal(0.0, 1.0, N_ITEMS)
    return ItemParameters.create("2pl", a, b), rng.normal(size=N_SIMULEES)


def _simulate(params, design, theta, seed=7):
    """The figures of a simulation (those of the simulation report these tables print)."""
    started = time.perf_counter()
    results = run_cat(params, design, np.random.default_rng(seed), true_theta=theta)
    seconds = time.perf_counter() - started
    estimate, length, decision = (np.concatenate([getattr(part, name) for part in results])
                                  for name in ("theta", "scored_length", "decision"))
    given = sum(part.administered.sum(axis=0) for part in results)        # (n_items,)
    n, mean_length = theta.size, float(length.mean())
    figures = {"seconds": seconds, "mean_length": mean_length,
               "rmse": round(float(np.sqrt(np.mean((estimate - theta) ** 2))), 4),
               "exposure": {"max": round(float(given.max() / n), 4),
                            "unused_share": round(float(np.mean(given == 0)), 4)},
               "overlap_rate": round(float(np.sum(given * (given - 1.0)) / (n * (n - 1))
                                           / mean_length), 4)}
    rule = design.stopping.classification
    if rule is not None:
        right = decision == np.where(theta >= rule.cut, 1, -1)
        outside = np.abs(theta - rule.cut) >= rule.delta
        figures["classification"] = {
            "accuracy": round(float(right.mean()), 4),
            "accuracy_outside_indifference": round(float(right[outside].mean()), 4)}
    return figures


def accuracy_against_catsim():
    params, theta = _bank(2026)
    rows = []
    items = np.column_stack([params.a, params.b[:, 0], np.zeros(N_ITEMS), np.ones(N_ITEMS)])
    for label, design in {**DESIGNS, **ML_DESIGNS}.items():
        ours = _simulate(params, design, theta)
        peer, note = run_peer(_CATSIM, {
            "items": items, "theta": theta,
            "random": np.array([design.selection.method == "random"]),
            "se": np.array([design.stopping.se or 0.0])})
        if peer:
            peer_text = (f"{peer['rmse']:.3f}", f"{peer['mean_length']:.1f}",
                         f"{peer['seconds']:.1f} s", f"{peer['seconds'] / ours['seconds']:.0f}x")
        else:
            peer_text = ("–", "–", note, "–")
        rows.append((label, f"{ours['rmse']:.3f}", f"{ours['mean_length']:.1f}",
                     f"{ours['seconds']:.2f} s", *peer_text))
    header = ("design", "irtcat RMSE", "length", "irtcat time", "catsim RMSE (ML)", "length",
              "catsim time", "irtcat faster by")
    return "Accuracy and speed against catsim 0.21, 300-item bank, 3,000 simulees", header, rows


def bank_seeds():
    rows = []
    for seed in range(6):
        params, theta = _bank(seed)
        fixed = _simulate(params, DESIGNS["MFI + EAP, 20 items"], theta)
        random = _simulate(params, DESIGNS["random, 20 items"], theta)
        variable = _simulate(params, DESIGNS["MFI + EAP, SE < 0.30 (5 to 40 items)"], theta)
        rows.append((str(seed), f"{fixed['rmse']:.3f}", f"{random['rmse']:.3f}",
                     f"{variable['rmse']:.3f}", f"{variable['mean_length']:.1f}"))
    header = ("bank seed", "MFI 20 RMSE", "random 20 RMSE", "SE<0.3 RMSE", "SE<0.3 length")
    return "The same designs on six seeded 300-item banks", header, rows


def exposure():
    rows = []
    for label, sd_a in (("a ~ lognormal(0, 0.25)", 0.25), ("a = 1 for every item", 0.0)):
        params, theta = _bank(0, sd_a)
        base = CATDesign(stopping=FIXED_20, exposure=Exposure(target=0.2))
        free = _simulate(params, base, theta)
        started = time.perf_counter()
        probability, history = tune_sympson_hetter(params, base, np.random.default_rng(3))
        tuning = time.perf_counter() - started
        controlled = _simulate(params, _exposure(base, "sympson-hetter", probability), theta)
        eligibility = _simulate(params, _exposure(base, "item-eligibility"), theta)
        progressive = replace(base, selection=Selection(progressive=True))
        k_progressive, rounds = tune_sympson_hetter(params, progressive,
                                                    np.random.default_rng(3))
        blended = _simulate(params, _exposure(progressive, "sympson-hetter", k_progressive),
                            theta)
        for name, result in (("MFI, no control", free),
                             (f"Sympson-Hetter 0.20 (tuned in {len(history)} rounds, "
                              f"{tuning:.0f} s)", controlled),
                             ("item eligibility 0.20", eligibility),
                             (f"progressive + Sympson-Hetter 0.20 ({len(rounds)} rounds)",
                              blended)):
            used = 1 - result["exposure"]["unused_share"]
            rows.append((label, name, f"{result['exposure']['max']:.3f}", f"{used:.0%}",
                         f"{result['rmse']:.3f}", f"{result['overlap_rate']:.3f}"))
    header = ("bank", "exposure control", "max exposure", "bank used", "RMSE", "overlap")
    return "Exposure control, 300-item bank, 20-item tests, 3,000 simulees", header, rows


def _exposure(design, method, sympson_hetter=None):
    """`design` under the exposure control `method` at the same target."""
    return replace(design, exposure=replace(design.exposure, method=method,
                                            sympson_hetter=sympson_hetter))


def content_and_classification():
    rng = np.random.default_rng(11)
    n_items = 1000
    params = ItemParameters.create("2pl", rng.lognormal(0, 0.25, n_items), rng.normal(0, 1,
                                                                                  n_items))
    standard = rng.integers(0, 5, n_items)
    groups = {f"S{g}": standard == g for g in range(5)}
    design = CATDesign(stopping=Stopping(min_items=30, max_items=30, se=None),
                       content=Content(groups=groups, rules=tuple(ContentRule(f"S{g}", 4, 8)
                                                                  for g in range(5))))
    theta = rng.normal(size=10_000)
    started = time.perf_counter()
    batches = run_cat(params, design, np.random.default_rng(5), true_theta=theta)
    seconds = time.perf_counter() - started
    counts = np.stack([batches[0].group_counts[f"S{g}"] for g in range(5)])
    violations = int(np.sum((counts < 4) | (counts > 8)))
    rows = [("10,000 simulees x 30 items, 1,000-item bank, 5 standards each 4 to 8 items",
             f"{seconds:.1f} s", f"{violations} tests outside a min/max")]
    params300, theta300 = _bank(2026)
    sprt = CATDesign(stopping=Stopping(min_items=5, max_items=40, se=None,
                                       classification=Classification(0.5)))
    result = _simulate(params300, sprt, theta300)
    rows.append(("SPRT at cut 0.5, delta 0.3, alpha = beta = 0.05, 300 items",
                 f"{result['seconds']:.2f} s",
                 f"correct outside the indifference region "
                 f"{result['classification']['accuracy_outside_indifference']:.3f}, overall "
                 f"{result['classification']['accuracy']:.3f}, mean length "
                 f"{result['mean_length']:.1f}"))
    return "Content balance and classification", ("run", "time", "result"), rows


def single_session_steps():
    rng = np.random.default_rng(0)
    n_items = 10_000
    a, b = rng.lognormal(0, .25, n_items), rng.normal(0, 1, n_items)
    params = ItemParameters.create("2pl", a, b)
    design = CATDesign(stopping=Stopping(min_items=30, max_items=30, se=None))
    started = time.perf_counter()
    tables = BankTables(params, design)
    setup = time.perf_counter() - started
    answers = simulate_responses(rng.normal(size=100), params, rng)
    micro = _step_seconds(tables, design, answers) * 1e6
    # The same bank with guessing: MFI's information in the 3PL's closed form.
    params_3pl = ItemParameters.create("3pl", a, b, c=rng.uniform(0.1, 0.25, n_items))
    answers_3pl = simulate_responses(rng.normal(size=100), params_3pl, rng)
    micro_3pl = _step_seconds(BankTables(params_3pl, design), design, answers_3pl) * 1e6
    shadow = _shadow_steps()
    return ("One session's step (select among 10,000 items, record, re-estimate, stop check)",
            ("measure", "value", "note"),
            [("p50", f"{np.percentile(micro, 50):.0f} µs",
              "100 sessions x 30 items, MFI (exact information at the estimate) + EAP, 2PL"),
             ("p99", f"{np.percentile(micro, 99):.0f} µs", ""),
             ("p50, 3PL bank", f"{np.percentile(micro_3pl, 50):.0f} µs",
              "the same bank with c ~ U(0.1, 0.25)"),
             ("p99, 3PL bank", f"{np.percentile(micro_3pl, 99):.0f} µs", ""),
             ("bank tables (once per bank)", f"{setup:.2f} s",
              "probabilities on the EAP grid"),
             ("shadow test p50", f"{np.percentile(shadow, 50):.1f} ms",
              "300 items, 10 constraints (5 standards 3 to 5 items, 1 tag, 4 enemy sets), "
              "MILP per step"),
             ("shadow test p99", f"{np.percentile(shadow, 99):.1f} ms",
              f"{shadow.size} steps")])


def _shadow_steps(n_sessions=40):
    """Milliseconds per step of a session under shadow-test constraints."""
    rng = np.random.default_rng(3)
    params = ItemParameters.create("2pl", rng.lognormal(0, .25, N_ITEMS), rng.normal(0, 1,
                                                                                   N_ITEMS))
    standard = rng.integers(0, 5, N_ITEMS)
    groups = {f"S{g}": standard == g for g in range(5)}
    groups["tag"] = rng.random(N_ITEMS) < 0.3
    rules = tuple(ContentRule(f"S{g}", 3, 5) for g in range(5)) + (ContentRule("tag", 2, 6),)
    enemies = tuple(np.array(e) for e in rng.choice(N_ITEMS, (4, 3), replace=False))
    design = CATDesign(stopping=FIXED_20, content=Content(rules=rules, groups=groups,
                                                          method="shadow", enemies=enemies))
    answers = simulate_responses(rng.normal(size=n_sessions), params, rng)
    return _step_seconds(BankTables(params, design), design, answers) * 1e3


def _step_seconds(tables, design, answers):
    """Seconds per step (the next item, then its answer recorded) of one-examinee sessions
    answering from `answers` (n, n_items)."""
    times = []
    for person in range(answers.shape[0]):
        session = Session(tables, design, seed=person)
        while True:
            started = time.perf_counter()
            item = session.next_item()
            if item is None:
                break
            session.answer(item, answers[person, item])
            times.append(time.perf_counter() - started)
    return np.array(times)


def run():
    return [accuracy_against_catsim(), bank_seeds(), exposure(), content_and_classification(),
            single_session_steps()]
