"""Multidimensional adaptive testing: one session's step, and the study of issue 18 —
one multidimensional CAT (D-rule) against three unidimensional CATs run one after another.

Study (`study_rows`): every simulee answers from the same answer matrix in both
arms (drawn once from the true model; with simple structure an item's answer depends
on its own standard's theta only, so the unidimensional CATs meet the very answers
the multidimensional one does).

- Multidimensional: D-rule with the prior (mirtCAT's 'DPrule': det of the posterior
  information, prior precision + the administered items' information + the
  candidate's, at the EAP), EAP on the 25^3 whitened grid with the bank's N(0, R)
  prior; stop when every standard's SE <= 0.40 (or the bank is used up); with
  "focus", only items of standards still above 0.40 are candidates.
- Unidimensional: per standard, its own items, unidimensional MFI + EAP (121 nodes,
  N(0, 1)), stop at SE <= 0.40 (or the standard's items used up); lengths add up.
- Classification: the equal-weight composite (mean of the three thetas) against a
  cut of 0.5 (the demo credential's cut); the decision of each arm at its end
  against the truth's composite.

Classification (`classification_rows`): the same composite and cut, decided by the
confidence interval or by the SPRT (`engine.mcat_classification`), without an SE rule.

Banks: the 45-item bank of shared/refs2 (TRUE parameters of simmdim_3000x45_truth.json,
R = [[1,.5,.6],[.5,1,.7],[.6,.7,1]]), and the demo credential's three standards as a
simple-structure 2PL/GRM bank with the demo's generating parameters (api/demo.py's
recipe: a ~ lognormal(0.15, 0.25), b = difficulty hint + N(0, 0.4), GRM thresholds
b -+ 0.8; drawn here with the demo's seed 2026) under three factor correlations: the
refs2 matrix (standards of one credential correlate; the value mirt estimates on the
shared simulation), the identity (the demo's own log draws its standards
independently: the control where no strength can be borrowed), and 0.8 everywhere
(closely related standards).

"information saved at most" (`information_saving_bound`): the most test information a
multidimensional test can save at that correlation and SE target (14.0 % for the refs2
matrix, 0 for independent standards, 30.7 % at 0.8). Items saved can exceed it: an
adaptive test's first items are its most informative, so the items a test no longer
needs are its weakest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from irtcat.engine.design import CATDesign, Stopping
from irtcat.engine.mcat import McatDesign, McatSession, McatTables, draw_answers, simulate
from irtcat.engine.models import ItemParameters
from irtcat.engine.multidimensional import MultidimensionalItems
from irtcat.engine.simulate import run_cat

ROOT = Path(__file__).resolve().parents[1]
REFS = ROOT / ".." / "shared" / "refs2"
CORRELATION = [[1.0, 0.5, 0.6], [0.5, 1.0, 0.7], [0.6, 0.7, 1.0]]
TARGET_SE, CUT, SIMULEES, SEED = 0.40, 0.5, 2000, 20261205
DEMO_SEED = 2026
HINT_B = {"easy": -1.0, "medium": 0.0, "hard": 1.0}


def refs_bank():
    """The shared 3-standard bank's true items (45 2PL, simple structure)."""
    truth = json.loads((REFS / "simmdim_3000x45_truth.json").read_text())
    entries = [{"id": item["id"], "standard": item["factor"], "model": "2pl",
                "a": [item["a1"], item["a2"], item["a3"]], "d": item["d"]}
               for item in truth["items"]]
    return MultidimensionalItems.from_entries(entries, {"factors": ["F1", "F2", "F3"]})


def demo_bank():
    """The demo credential's operational items with generating parameters drawn by the
    demo's recipe, one factor per standard."""
    document = json.loads((ROOT / "api" / "demo" / "items.json").read_text())
    standards = ("AI-ML", "AI-DE", "AI-RAI")
    rng = np.random.default_rng(DEMO_SEED)
    entries = []
    for f, code in enumerate(standards):
        for item in document["items"]:
            if item["standard"] != code or item["status"] != "operational":
                continue
            center = HINT_B.get(item.get("difficulty"), 0.0) + rng.normal(0.0, 0.4)
            a = float(rng.lognormal(0.15, 0.25))
            slopes = [0.0, 0.0, 0.0]
            slopes[f] = a
            d = [-a * (center - 0.8), -a * (center + 0.8)] if item["model"] == "grm" \
                else -a * center
            entries.append({"id": item["id"], "standard": code, "model": item["model"],
                            "a": slopes, "d": d})
    return MultidimensionalItems.from_entries(entries, {"factors": list(standards)})


def _unidimensional(items, factor):
    """The standard's own items as a unidimensional bank (IRT form b = -d / a) and their
    positions in the multidimensional bank."""
    index = np.flatnonzero(items.slopes[:, factor] != 0)
    a = items.slopes[index, factor]
    d = items.intercepts[index]
    b = [(-row[~np.isnan(row)] / slope).tolist() if model == "grm" else float(-row[0] / slope)
         for row, slope, model in zip(d, a, items.models[index], strict=True)]
    return ItemParameters.create(list(items.models[index]), a, b), index


def compare(items, correlation, n=SIMULEES, seed=SEED, focus=False):
    """The study on one bank: a dict of the two arms' figures."""
    rng = np.random.default_rng(seed)
    truth = rng.multivariate_normal(np.zeros(3), correlation, n)
    answers = draw_answers(items, truth, rng)
    true_side = truth.mean(axis=1) >= CUT
    design = McatDesign(criterion="dprule", max_items=items.n_items, se=(TARGET_SE,) * 3,
                        focus=focus)
    started = time.perf_counter()
    multi = simulate(McatTables(items, np.zeros(3), correlation, design), truth, seed, answers)
    multi_seconds = time.perf_counter() - started
    uni_design = CATDesign(stopping=Stopping(min_items=1, max_items=items.n_items, se=TARGET_SE))
    lengths, thetas, reached = np.zeros(n), np.zeros((n, 3)), np.ones(n, dtype=bool)
    for factor in range(3):
        params, index = _unidimensional(items, factor)
        results = run_cat(params, uni_design, np.random.default_rng(seed + factor),
                          responses=answers[:, index])
        lengths += np.concatenate([r.length for r in results])
        thetas[:, factor] = np.concatenate([r.theta for r in results])
        reached &= np.concatenate([r.se for r in results]) <= TARGET_SE
    return {
        "multi_length": multi.length.mean(), "uni_length": lengths.mean(),
        "multi_reached": np.all(multi.se <= TARGET_SE, axis=1).mean(),
        "uni_reached": reached.mean(),
        "multi_accuracy": np.mean((multi.theta.mean(axis=1) >= CUT) == true_side),
        "uni_accuracy": np.mean((thetas.mean(axis=1) >= CUT) == true_side),
        "multi_rmse": np.sqrt(np.mean((multi.theta - truth) ** 2, axis=0)),
        "uni_rmse": np.sqrt(np.mean((thetas - truth) ** 2, axis=0)),
        "multi_seconds": multi_seconds,
    }


def information_saving_bound(correlation, se=TARGET_SE):
    """The largest share of test information a multidimensional test can save against
    separate tests reaching the same SE in every factor.

    Separate tests need ``1/se^2 - 1`` information each (prior variance 1). Together, with
    simple structure, the posterior precision is ``R^-1 + diag(I)``; the least total
    information ``sum(I)`` with every diagonal element of its inverse at most se^2 is found
    by SLSQP. It measures what the correlation allows; it bounds the items
    saved only roughly (an adaptive test's last items carry the least information).
    """
    from scipy.optimize import minimize

    precision = np.linalg.inv(np.asarray(correlation, dtype=float))
    m, need = precision.shape[0], 1 / se**2 - 1
    constraint = {"type": "ineq", "fun": lambda info: se**2 - np.diag(
        np.linalg.inv(precision + np.diag(info)))}
    best = minimize(np.sum, np.full(m, need), method="SLSQP", bounds=[(0, None)] * m,
                    constraints=[constraint])
    return 1 - best.fun / (m * need)


def study_rows():
    refs, demo, identity = refs_bank(), demo_bank(), np.eye(3)
    uniform = np.full((3, 3), 0.8) + 0.2 * np.eye(3)
    banks = (("shared/refs2, 45 items (15 a standard), R of the truth", refs, CORRELATION, False),
             ("demo credential, 153 items (54/50/49), R of refs2", demo, CORRELATION, False),
             ("the same, with focus", demo, CORRELATION, True),
             ("demo credential, independent standards (R = I), with focus", demo, identity,
              True),
             ("demo credential, every correlation 0.8, with focus", demo, uniform, True))
    rows = []
    for name, items, correlation, focus in banks:
        f = compare(items, np.asarray(correlation, dtype=float).tolist(), focus=focus)
        saving = 1 - f["multi_length"] / f["uni_length"]
        bound = information_saving_bound(correlation)
        rows.append((name, f"{f['multi_length']:.1f}", f"{f['uni_length']:.1f}",
                     f"{100 * saving:.1f} %", f"{100 * bound:.1f} %",
                     f"{f['multi_accuracy']:.3f} / {f['uni_accuracy']:.3f}",
                     f"{f['multi_reached']:.3f} / {f['uni_reached']:.3f}",
                     " ".join(f"{v:.3f}" for v in f["multi_rmse"]) + " / "
                     + " ".join(f"{v:.3f}" for v in f["uni_rmse"]),
                     f"{f['multi_seconds']:.1f} s"))
    return (f"Multidimensional CAT (D-rule, EAP) against three unidimensional CATs, "
            f"SE <= {TARGET_SE} in every standard, {SIMULEES} simulees, seed {SEED}, "
            f"cut {CUT} on the equal-weight composite",
            ("bank", "MCAT mean length", "3 x CAT mean length", "items saved",
             "information saved at most",
             "accuracy MCAT / 3 x CAT", "reached SE MCAT / 3 x CAT",
             "RMSE per standard MCAT / 3 x CAT", "MCAT time"), rows)


def classification_rows(n=SIMULEES, seed=SEED, delta=0.3):
    """Classification of the equal-weight composite against CUT by its confidence interval
    and by the SPRT (cut +- delta, alpha = beta = 0.05), no SE rule, 5 to 30 items, on the
    refs2 bank and the demo credential's bank (R of refs2); the same simulees and answers
    for both methods."""
    weights = (1 / 3,) * 3
    rows = []
    for name, items in (("shared/refs2, 45 items", refs_bank()),
                        ("demo credential, 153 items", demo_bank())):
        rng = np.random.default_rng(seed)
        truth = rng.multivariate_normal(np.zeros(3), CORRELATION, n)
        answers = draw_answers(items, truth, rng)
        composite = truth @ np.asarray(weights)
        true_side = np.where(composite >= CUT, 1, -1)
        outside = np.abs(composite - CUT) >= delta
        for method in ("ci", "sprt"):
            design = McatDesign(criterion="dprule", min_items=5, max_items=30,
                                composite_weights=weights, cut=CUT, classification=method,
                                delta=delta)
            started = time.perf_counter()
            run = simulate(McatTables(items, np.zeros(3), CORRELATION, design), truth, seed,
                           answers)
            seconds = time.perf_counter() - started
            correct = run.decision == true_side
            rows.append((name, method if method == "ci" else f"sprt, delta {delta}",
                         f"{run.length.mean():.2f}", f"{correct.mean():.3f}",
                         f"{correct[outside].mean():.3f}", f"{np.mean(run.reason == 3):.3f}",
                         f"{seconds:.1f} s"))
    return (f"Classification of the equal-weight composite against cut {CUT}: confidence "
            f"interval against SPRT (alpha = beta = 0.05), 5 to 30 items, {n} simulees from "
            f"N(0, R of refs2), seed {seed}",
            ("bank", "method", "mean length", "accuracy",
             f"accuracy outside cut +- {delta}", "decided (rules_met)", "time"),
            rows)


def step_rows(n_items=1000, n_sessions=50, length=30, seed=7):
    """Milliseconds per step (next item by the D-rule, then its answer recorded and the EAP
    updated on the 15,625-node grid) of one-examinee sessions on a 3-factor bank."""
    rng = np.random.default_rng(seed)
    slopes = rng.lognormal(-0.3, 0.3, (n_items, 3)) * (rng.random((n_items, 3)) < 0.6)
    slopes[np.arange(n_items), rng.integers(0, 3, n_items)] += rng.lognormal(0, 0.25, n_items)
    entries = [{"id": f"i{j}", "model": "2pl", "a": slopes[j].tolist(),
                "d": float(rng.normal())} for j in range(n_items)]
    items = MultidimensionalItems.from_entries(entries, {"factors": ["A", "B", "C"]})
    rows = []
    for criterion in ("dprule", "drule", "arule", "trule"):
        design = McatDesign(criterion=criterion, max_items=length, min_items=length)
        started = time.perf_counter()
        tables = McatTables(items, np.zeros(3), CORRELATION, design)
        table_seconds = time.perf_counter() - started
        steps = []
        for person in range(n_sessions):
            session = McatSession(tables, seed=person)
            theta = rng.multivariate_normal(np.zeros(3), CORRELATION)
            for _ in range(length):
                begin = time.perf_counter()
                item = session.next_item()
                t = slopes[item] @ theta + items.intercepts[item, 0]
                session.answer(item, int(rng.random() < 1 / (1 + np.exp(-t))))
                steps.append(time.perf_counter() - begin)
        steps = np.array(steps) * 1e3
        rows.append((criterion, f"{np.percentile(steps, 50):.2f} ms",
                     f"{np.percentile(steps, 99):.2f} ms", f"{table_seconds:.2f} s",
                     f"{n_sessions} sessions x {length} items"))
    return (f"One session's step on a 3-factor bank of {n_items} items (select, record, "
            "re-estimate EAP on 25^3 nodes, stop check)",
            ("criterion", "p50", "p99", "bank tables (once)", "runs"), rows)


def run():
    return [step_rows(), study_rows(), classification_rows()]
