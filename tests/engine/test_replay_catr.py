"""Replay against a reference implementation of catR's published algorithm.

The reference below is written from catR 3.17's documentation and R sources
(Magis & Barrada, 2017, "Computerized adaptive testing with R: recent updates of
the package catR", Journal of Statistical Software 76(1); R/nextItem.R,
R/thetaEst.R, R/eapEst.R, R/integrate.catR.R, R/Ii.R, R/Pi.R), with
catR's defaults D = 1, a N(0, 1) prior, parInt = c(-4, 4, 33):

- Pi: P = c + (1 - c) e / (1 + e), e = exp(a (theta - b)), kept inside
  [1e-10, 1 - 1e-10]; dP = a e (1 - c) / (1 + e)^2;
- Ii: Fisher information dP^2 / (P Q) of every item at the current estimate;
- nextItem, criterion "MFI", randomesque 1: the available item of highest
  information (catR draws among exact ties; the reference takes the lowest index,
  which is what the engine promises);
- eapEst: the likelihood as a product of P^x Q^(1 - x), and the estimate
  int theta dnorm(theta) L / int dnorm(theta) L, both integrals by the trapezoidal
  rule (integrate.catR) over 33 equally spaced points of [-4, 4];
- start at theta 0 (the first item is the MFI item at 0), a fixed length of 20.

irtcat is configured the same through the CAT configuration of spec/FORMATS.md
(scoring.quadrature 33 nodes on [-4, 4], start.theta 0, mfi, 20 items) and
replays the same pre-generated answers as `irtcat simulate --responses` does
(`engine.simulate.run_cat(responses=...)`): a full answer matrix drawn once, from
which each test reads the answer to the item it picks.

The one difference left between the two is the quadrature rule: irtcat weights
the nodes by the normal density (mirt's rectangular rule), catR's trapezoidal rule
halves the two end nodes' weights. At |theta| = 4 the prior's density is 1e-4 of
its peak, so that moves an estimate by far less than the gap between two items'
information, except on a near-tie; the acceptance (issue "Replay") asks for the
same item sequence in at least 99.5% of 1,000 seeded simulees.
"""

import numpy as np
import pytest

from irtcat.delivery.cat_config import design_from_config
from irtcat.engine.simulate import run_cat
from irtcat.itembank import bank_from_document

TEST_LENGTH = 20
NODES = np.linspace(-4.0, 4.0, 33)                 # catR's parInt = c(-4, 4, 33)
CONFIG = {"start": {"theta": 0.0},
          "scoring": {"method": "eap", "prior": {"mean": 0.0, "sd": 1.0},
                      "quadrature": {"nodes": 33, "range": [-4.0, 4.0]}},
          "selection": {"method": "mfi", "randomesque": 1},
          "stop": {"min_items": TEST_LENGTH, "max_items": TEST_LENGTH, "se": None}}


# --- the reference: catR's algorithm ---------------------------------------------------

def catr_probability(theta, a, b, c):
    """catR's Pi: P and dP/dtheta of each item at each theta, D = 1 and d = 1.

    theta : (n, 1) or (1, Q); a, b, c : broadcastable item parameters.
    """
    e = np.exp(a * (theta - b))
    p = c + (1.0 - c) * e / (1.0 + e)
    p = np.where(p == 0.0, 1e-10, np.where(p == 1.0, 1.0 - 1e-10, p))
    return p, a * e * (1.0 - c) / (1.0 + e) ** 2


def catr_information(theta, a, b, c):
    """catR's Ii for dichotomous items: dP^2 / (P Q), (n, n_items) at theta (n,)."""
    p, dp = catr_probability(theta[:, None], a[None, :], b[None, :], c[None, :])
    return dp**2 / (p * (1.0 - p))


def trapezoid(x, y):
    """catR's integrate.catR along the last axis: sum of (y_i + y_{i+1}) / 2 (x_{i+1} - x_i)."""
    return np.sum((y[..., 1:] + y[..., :-1]) / 2.0 * np.diff(x), axis=-1)


def catr_tests(a, b, c, answers, length=TEST_LENGTH):
    """Every simulee's test under catR's algorithm: (n, length) item indices.

    answers : (n, n_items) 0/1, the answer each simulee gives to each item. The
    simulees are independent; they are stepped together only for speed.
    """
    n = answers.shape[0]
    rows = np.arange(n)
    prior = np.exp(-0.5 * NODES**2) / np.sqrt(2.0 * np.pi)       # dnorm(X, 0, 1)
    likelihood = np.ones((n, NODES.size))
    theta = np.zeros(n)
    available = np.ones(answers.shape, dtype=bool)
    sequence = np.empty((n, length), dtype=np.intp)
    for step in range(length):
        info = np.where(available, catr_information(theta, a, b, c), -np.inf)
        item = np.argmax(info, axis=1)                       # the first of any exact tie
        sequence[:, step] = item
        available[rows, item] = False
        x = answers[rows, item][:, None]
        p, _ = catr_probability(NODES[None, :], a[item, None], b[item, None], c[item, None])
        likelihood *= p**x * (1.0 - p) ** (1 - x)
        theta = trapezoid(NODES, NODES * prior * likelihood) / trapezoid(NODES, prior * likelihood)
    return sequence


# --- the replay -----------------------------------------------------------------------

def replay_bank(model, n_items, seed):
    """A seeded bank: a ~ lognormal(0, 0.25), b ~ N(0, 1), c ~ U(0.1, 0.25) for 3PL."""
    rng = np.random.default_rng(seed)
    a, b = rng.lognormal(0.0, 0.25, n_items), rng.normal(0.0, 1.0, n_items)
    c = rng.uniform(0.1, 0.25, n_items) if model == "3pl" else np.zeros(n_items)
    items = [{"id": f"I{j:04d}", "model": model, "a": float(a[j]), "b": float(b[j]),
              **({"c": float(c[j])} if model == "3pl" else {})} for j in range(n_items)]
    return bank_from_document({"format": "irtcat-bank/1", "items": items}), a, b, c


def answer_matrix(a, b, c, n, seed):
    """A full 0/1 answer matrix of n simulees theta ~ N(0, 1), drawn once: (n, n_items)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    p, _ = catr_probability(theta[:, None], a[None, :], b[None, :], c[None, :])
    return (rng.random(p.shape) < p).astype(np.intp)


def irtcat_tests(bank, answers):
    design = design_from_config(CONFIG, bank)
    results = run_cat(bank.params, design, np.random.default_rng(0), responses=answers)
    return np.concatenate([part.items[:, :TEST_LENGTH] for part in results])


def agreement(model, n_items=300, n=1000, seed=2026):
    """The share of simulees whose 20 items irtcat and the reference give in the same order."""
    bank, a, b, c = replay_bank(model, n_items, seed)
    answers = answer_matrix(a, b, c, n, seed + 1)
    ours, theirs = irtcat_tests(bank, answers), catr_tests(a, b, c, answers)
    return float(np.mean(np.all(ours == theirs, axis=1)))


@pytest.mark.parametrize("model", ["2pl", "3pl"])
def test_replay_gives_catr_item_sequences(model):
    # Expected: the acceptance "Replay", at least 99.5% of 1,000 seeded simulees
    # get the same 20 items in the same order as catR's algorithm gives them.
    assert agreement(model) >= 0.995


def test_reference_trapezoid_is_catr_integration():
    # Expected: a closed form: the trapezoidal rule is exact for a straight line,
    # int_0^2 (3 x + 1) dx = 8, and that is what catR's integrate.catR computes.
    x = np.linspace(0.0, 2.0, 5)
    assert trapezoid(x, 3.0 * x + 1.0) == pytest.approx(8.0, abs=1e-12)


def test_reference_information_is_the_2pl_closed_form():
    # Expected: closed form a^2 P (1 - P) of the 2PL at theta = b, where P = 1/2: a^2 / 4.
    a, b, c = np.array([0.8, 1.7]), np.array([0.3, -1.0]), np.zeros(2)
    info = catr_information(np.array([0.3, -1.0]), a, b, c)
    assert info[0, 0] == pytest.approx(0.16, rel=1e-12)
    assert info[1, 1] == pytest.approx(1.7**2 / 4, rel=1e-12)
