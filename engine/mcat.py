"""Multidimensional adaptive tests: one examinee's session and a vectorized batch of
simulees, over a `MultidimensionalItems` bank and its population N(mean, Sigma).

After each answer theta is scored (EAP on the bank's latent grid, updated by the
answer's likelihood at every node, or MAP by Newton on the answers so far); the next
item maximises a criterion of `engine.mcat_selection` at the estimate, among the items
left in the examinee's pool after the content rules and exposure control:

- content: per standard (the items' ``standard``), at most ``max`` items; when the
  items left to give only just cover the unmet minimums, only the standards below
  their minimum stay open (the light rule of `engine.content`);
- focus (optional): with per-factor SE targets, only items loading on a factor not
  yet at its target are candidates; when none is left the test ends (pool_exhausted);
- exposure: "none" (the best item), "randomesque" (one of the best k, uniformly,
  `engine.selection.best_of`), "sympson-hetter" (walk down the ranking, give item j
  with its probability K_j; the items passed over leave the pool), "item-eligibility"
  (item j is in the examinee's pool with its probability, drawn at the start: fixed
  probabilities from the design, or, with only a target, live ones given to
  `McatSession.start` and drawn from a stream of their own, `ELIGIBILITY_STREAM`).

A test stops at ``max_items``, when no item is left, or, from ``min_items`` on and with
every content minimum met, when its precision rules hold (every factor's SE at or
below its threshold, and/or the composite's SE at or below its own) or its
classification of the composite ``w . theta`` against the cut is decided, by its
confidence interval ("ci") or by Wald's SPRT at ``w . theta = cut +- delta`` ("sprt"),
`engine.mcat_classification`. The decision at the end is the SPRT's when it decided at
the last check, else the side of the cut the composite estimate is on.

Length: the design, the vectorized batch that the simulator and a single session
share, the simulator and the session in one module, a little over 500 lines, since
the session is the batch of one examinee and each reads the other's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .kernel import logsumexp
from .mcat_classification import CLASSIFICATION_METHODS, composite_interval, composite_sprt
from .mcat_scoring import LOG_FLOOR, composite, estimate_map, latent_grid, posterior_moments
from .mcat_selection import (
    WITH_PRIOR,
    canonical_criterion,
    information_criterion,
    posterior_kl,
)
from .multidimensional import log_probability, predictor_information
from .selection import best_of, top_of_row, top_ranked
from .session import eligibility_draw

EXPOSURE_METHODS = ("none", "randomesque", "sympson-hetter", "item-eligibility")
STOP_REASONS = ("", "max_items", "pool_exhausted", "rules_met")
TRACE_CANDIDATES = 5
_POSTERIOR_CELLS = 2**22           # simulees x grid nodes held at once by `simulate`
_NODE_TABLE = 2**23                # most log probabilities at the grid's nodes kept


@dataclass(frozen=True)
class McatDesign:
    """A multidimensional test design (m factors, n items).

    se : one threshold per factor, or None; composite_weights (m,) with composite_se
    and/or cut (classification of the composite by `classification`: "ci", its
    confidence interval at alpha, or "sprt", Wald's SPRT at cut +- delta with error
    rates alpha and beta);
    criterion_weights (m,): the T- and A-rules' weights; content: (standard, min, max)
    triples; exposure_probability (n,): Sympson-Hetter's K_j or item eligibility's p_j;
    exposure_target: item eligibility's target rate when its probabilities are live
    (no exposure_probability: each session is given them at its start);
    focus: with `se`, only items loading on a factor still above its threshold are
    candidates (the test ends when none is left).
    """

    criterion: str = "dprule"
    scoring: str = "eap"
    min_items: int = 1
    max_items: int = 20
    se: tuple | None = None
    composite_weights: tuple | None = None
    composite_se: float | None = None
    cut: float | None = None
    alpha: float = 0.05
    classification: str = "ci"
    delta: float = 0.3
    beta: float = 0.05
    criterion_weights: tuple | None = None
    content: tuple = ()
    exposure: str = "none"
    randomesque: int = 1
    exposure_probability: tuple | None = None
    exposure_target: float | None = None
    focus: bool = False

    def __post_init__(self):
        object.__setattr__(self, "criterion", canonical_criterion(self.criterion))
        if self.scoring not in ("eap", "map"):
            raise ValueError(f"scoring method must be eap or map, got {self.scoring!r}")
        if not 0 <= self.min_items <= self.max_items or self.max_items < 1:
            raise ValueError("need 0 <= min_items <= max_items and max_items >= 1")
        if self.exposure not in EXPOSURE_METHODS:
            raise ValueError(f"exposure method must be one of {', '.join(EXPOSURE_METHODS)}")
        if (self.composite_se is not None or self.cut is not None) and not self.composite_weights:
            raise ValueError("a composite rule needs the composite's weights")
        if self.exposure == "sympson-hetter" and self.exposure_probability is None:
            raise ValueError("sympson-hetter needs a probability per item")
        if self.exposure == "item-eligibility" and self.exposure_probability is None and \
                self.exposure_target is None:
            raise ValueError("item-eligibility needs a probability per item or a target")
        if self.exposure_target is not None and not 0 <= self.exposure_target <= 1:
            raise ValueError(f"the exposure target must be in [0, 1], "
                             f"got {self.exposure_target!r}")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if self.classification not in CLASSIFICATION_METHODS:
            raise ValueError(f"classification method must be one of "
                             f"{', '.join(CLASSIFICATION_METHODS)}, got {self.classification!r}")
        if self.classification == "sprt":
            if not self.delta > 0:
                raise ValueError(f"the SPRT's delta must be > 0, got {self.delta!r}")
            if not (0 < self.beta < 1 and self.alpha + self.beta < 1):
                raise ValueError("the SPRT needs beta in (0, 1) and alpha + beta < 1")

    @property
    def live_eligibility(self):
        """Item eligibility from live probabilities (a target, no fixed probabilities)."""
        return self.exposure == "item-eligibility" and self.exposure_probability is None


class McatTables:
    """What every session on one bank and design shares: the latent grid (EAP or KL),
    the prior precision, the slopes' outer products (n, m, m), the content masks."""

    def __init__(self, items, mean, correlation, design, grid=None):
        self.items, self.design = items, design
        self.mean = np.asarray(mean, dtype=float)
        self.correlation = np.asarray(correlation, dtype=float)
        self.precision = np.linalg.inv(self.correlation)
        self.outer = items.slopes[:, :, None] * items.slopes[:, None, :]
        self.loads = (items.slopes != 0).astype(float)                          # (n, m)
        needs_grid = design.scoring == "eap" or design.criterion == "kl"
        self.grid = grid or (latent_grid(self.mean, self.correlation) if needs_grid else None)
        self.node_log_p = None                     # (n, K, Q), when it fits in _NODE_TABLE
        if self.grid is not None and \
                items.n_items * items.max_categories * self.grid.nodes.shape[0] <= _NODE_TABLE:
            self.node_log_p = self.answer_log_likelihood(np.arange(items.n_items))
        m = items.n_factors
        self.se = None if design.se is None else np.broadcast_to(
            np.asarray(design.se, dtype=float), (m,))
        self.weights = None if design.composite_weights is None else np.asarray(
            design.composite_weights, dtype=float)
        if self.weights is not None and self.weights.shape != (m,):
            raise ValueError(f"the composite needs {m} weights, one per factor")
        standards = np.array([s if s is not None else "" for s in items.standards] if
                             items.standards else [""] * items.n_items)
        self.content_masks = np.array([standards == rule[0] for rule in design.content],
                                      dtype=bool).reshape(len(design.content), items.n_items)
        self.content_min = np.array([rule[1] for rule in design.content], dtype=int)
        self.content_max = np.array([rule[2] for rule in design.content], dtype=int)
        self.exposure_probability = None if design.exposure_probability is None else \
            np.asarray(design.exposure_probability, dtype=float)
        self.z = NormalDist().inv_cdf(1 - design.alpha / 2)

    def answer_log_likelihood(self, index):
        """log P_jk at every grid node of the items at `index`: (u, K, Q), floored."""
        if self.node_log_p is not None:
            return self.node_log_p[index]
        log_p = log_probability(self.grid.nodes, self.items.subset(index))   # (Q, u, K)
        return np.ascontiguousarray(np.maximum(log_p, LOG_FLOOR).transpose(1, 2, 0))


class McatBatch:
    """The state of r examinees' tests, advanced together: arrays with one row each."""

    def __init__(self, tables, n_examinees, rng):
        design, items = tables.design, tables.items
        self.tables, self.rng = tables, rng
        r, n = n_examinees, items.n_items
        self.log_post = None if tables.grid is None else np.tile(tables.grid.log_weights, (r, 1))
        self.administered = np.zeros((r, n), dtype=bool)
        self.order = np.full((r, design.max_items), -1, dtype=np.intp)
        self.answers = np.full((r, design.max_items), -1, dtype=np.intp)
        self.length = np.zeros(r, dtype=np.intp)
        self.theta = np.tile(tables.mean, (r, 1))
        self.covariance = np.tile(tables.correlation, (r, 1, 1))
        self.pool = np.ones((r, n), dtype=bool)
        if design.exposure == "item-eligibility" and not design.live_eligibility:
            self.pool = rng.random((r, n)) < tables.exposure_probability
        self.reason = np.zeros(r, dtype=np.intp)          # index into STOP_REASONS
        self.decision = np.zeros(r, dtype=np.intp)
        self.last_score = None

    @property
    def se(self):
        return np.sqrt(np.diagonal(self.covariance, axis1=1, axis2=2))

    # --- stopping ------------------------------------------------------------------

    def check_stop(self, rows):
        """Record the stop reason of the rows whose test is over; their mask (r,)."""
        tables, design = self.tables, self.tables.design
        length = self.length[rows]
        counts = self.administered[rows].astype(np.intp) @ tables.content_masks.T.astype(np.intp)
        minimums = np.all(counts >= tables.content_min, axis=1)
        rules = np.zeros(rows.size, dtype=bool)
        precision = []
        if tables.se is not None:
            precision.append(np.all(self.se[rows] <= tables.se, axis=1))
        value = spread = None
        if tables.weights is not None:
            value, spread = composite(self.theta[rows], self.covariance[rows], tables.weights)
            if design.composite_se is not None:
                precision.append(spread <= design.composite_se)
        if precision:
            rules |= np.logical_and.reduce(precision)
        if design.cut is not None:
            decided, decision = self._classify(rows, value, spread)
            rules |= decided
        rules &= minimums & (length >= design.min_items) & (length > 0)
        left = self.pool[rows] & ~self.administered[rows]
        wanted = self._focus(rows)
        left = (left if wanted is None else left & wanted).any(axis=1)
        stop = np.where(length >= design.max_items, 1, np.where(rules, 3, np.where(~left, 2, 0)))
        self.reason[rows] = stop
        if design.cut is not None:
            side = np.where(value >= design.cut, 1, -1)
            self.decision[rows] = np.where(length > 0, np.where(decided, decision, side), 0)
        return stop > 0

    def _classify(self, rows, value, spread):
        """(decided (r,), decision (r,) in {1, -1}) of the composite against the cut."""
        tables, design = self.tables, self.tables.design
        if design.classification == "sprt":
            return composite_sprt(tables.items, self.theta[rows], self.order[rows],
                                  self.answers[rows], tables.weights, design)
        return composite_interval(value, spread, design.cut, tables.z)

    # --- selection ------------------------------------------------------------------

    def _eligible(self, rows):
        tables, design = self.tables, self.tables.design
        eligible = self.pool[rows] & ~self.administered[rows]
        if tables.content_masks.shape[0]:
            masks = tables.content_masks
            counts = self.administered[rows].astype(np.intp) @ masks.T.astype(np.intp)  # (r, G)
            closed = (counts >= tables.content_max).astype(np.intp) @ masks.astype(np.intp) > 0
            eligible &= ~closed
            deficit = np.maximum(tables.content_min - counts, 0)
            tight = deficit.sum(axis=1) >= design.max_items - self.length[rows]
            wanted = (deficit > 0).astype(np.intp) @ masks.astype(np.intp) > 0
            narrowed = eligible & wanted
            use = tight & narrowed.any(axis=1)
            eligible = np.where(use[:, None], narrowed, eligible)
        wanted = self._focus(rows)
        return eligible if wanted is None else eligible & wanted

    def _focus(self, rows):
        """With focus: the items loading on a factor still above its SE target (r, n), all
        items for a row whose every factor is at its target; without focus None."""
        tables = self.tables
        if not tables.design.focus or tables.se is None:
            return None
        unfinished = self.se[rows] > tables.se                                 # (r, m)
        wanted = unfinished.astype(float) @ tables.loads.T > 0                 # (r, n)
        return wanted | ~unfinished.any(axis=1)[:, None]     # every factor done: any item

    def criterion(self, rows, eligible):
        """The design's criterion at each row's estimate: (r, n), -inf where not eligible."""
        tables, name = self.tables, self.tables.design.criterion
        if name == "kl":
            log_post = self.log_post[rows]
            log_post = log_post - logsumexp(log_post, axis=1, keepdims=True)
            return posterior_kl(tables.items, self.theta[rows], log_post, tables.grid.nodes,
                                eligible)
        scalar = predictor_information(self.theta[rows], tables.items)      # (r, n)
        information = scalar[:, :, None, None] * tables.outer               # (r, n, m, m)
        held = np.einsum("rn,rnkl->rkl", self.administered[rows].astype(float), information)
        if name in WITH_PRIOR:
            held = held + tables.precision
        score = information_criterion(name, held, information,
                                      tables.design.criterion_weights)
        return np.where(eligible, score, -np.inf)

    def select(self, rows):
        """The next item of each row (-1 where none is eligible): (r,)."""
        design = self.tables.design
        eligible = self._eligible(rows)
        score = self.criterion(rows, eligible)
        self.last_score = score
        none = ~np.isfinite(score).any(axis=1)
        if design.exposure == "sympson-hetter":
            chosen = self._sympson_hetter(rows, score)
        else:
            chosen = best_of(self.rng, score, design.randomesque)
        return np.where(none, -1, chosen)

    def _sympson_hetter(self, rows, score):
        """Walk each row's ranking; give item j with probability K_j; the items passed over
        leave the pool (the last ranked is given if every one is passed over)."""
        ranked = top_ranked(score, min(24, score.shape[1]))                    # (r, depth)
        finite = np.isfinite(np.take_along_axis(score, ranked, axis=1))
        accept = (self.rng.random(ranked.shape) < self.tables.exposure_probability[ranked])
        accept &= finite
        accept[np.arange(ranked.shape[0]), finite.sum(axis=1).clip(1) - 1] = True
        first = np.argmax(accept, axis=1)
        passed = np.arange(ranked.shape[1])[None, :] < first[:, None]
        self.pool[rows[:, None].repeat(ranked.shape[1], 1)[passed], ranked[passed]] = False
        return ranked[np.arange(ranked.shape[0]), first]

    # --- answers and scoring ---------------------------------------------------------

    def record(self, rows, items, answers):
        """Add the answers (r,) to items (r,) of the rows, and score them again."""
        tables = self.tables
        position = self.length[rows]
        self.order[rows, position] = items
        self.answers[rows, position] = answers
        self.administered[rows, items] = True
        self.length[rows] += 1
        if self.log_post is not None:
            used, local = np.unique(items, return_inverse=True)
            log_p = tables.answer_log_likelihood(used)                           # (u, K, Q)
            every = rows.size == self.length.size          # all rows, in order: in place
            if every:
                self.log_post += log_p[local, answers]
            else:
                self.log_post[rows] += log_p[local, answers]
        if tables.design.scoring == "eap":
            log_post = self.log_post if every else self.log_post[rows]
            self.theta[rows], self.covariance[rows] = posterior_moments(log_post, tables.grid)
        else:
            responses = np.full((rows.size, tables.items.n_items), np.nan)
            given = np.arange(self.order.shape[1])[None, :] < self.length[rows, None]
            person, step = np.nonzero(given)                     # each row's answers so far
            responses[person, self.order[rows[person], step]] = self.answers[rows[person], step]
            estimate = estimate_map(responses, tables.items, tables.mean, tables.correlation)
            self.theta[rows], self.covariance[rows] = estimate.theta, estimate.covariance


@dataclass(frozen=True, eq=False)
class McatSimulation:
    """Simulated tests of N examinees: theta (N, m), covariance (N, m, m), length (N,),
    items and answers (N, max_items; -1 after the end), decision (N,) (1 pass, -1 fail,
    0 none), reason (N,) from STOP_REASONS."""

    theta: np.ndarray
    covariance: np.ndarray
    length: np.ndarray
    items: np.ndarray
    answers: np.ndarray
    decision: np.ndarray
    reason: np.ndarray

    @property
    def se(self):
        return np.sqrt(np.diagonal(self.covariance, axis1=1, axis2=2))


def draw_answers(items, true_theta, rng):
    """Every item's answer of every examinee at their true theta (N, m): (N, n) int."""
    answers = np.empty((true_theta.shape[0], items.n_items), dtype=np.intp)
    for start in range(0, true_theta.shape[0], 4096):
        chunk = slice(start, start + 4096)
        cumulative = np.cumsum(np.exp(log_probability(true_theta[chunk], items)), axis=-1)
        uniform = rng.random(cumulative.shape[:2] + (1,))
        answers[chunk] = np.minimum((uniform > cumulative).sum(-1), items.n_categories - 1)
    return answers


def simulate(tables, true_theta, seed=1, answers=None):
    """Run the tests of examinees with true theta (N, m) (or given answers (N, n));
    ValueError for live item eligibility, whose probabilities only live sessions have."""
    if tables.design.live_eligibility:
        raise ValueError("item-eligibility with only a target runs on live sessions: "
                         "a simulation needs 'parameters'")
    rng = np.random.default_rng(seed)
    true_theta = np.atleast_2d(np.asarray(true_theta, dtype=float))
    answers = draw_answers(tables.items, true_theta, rng) if answers is None else answers
    n = answers.shape[0]
    nodes = 1 if tables.grid is None else tables.grid.nodes.shape[0]
    chunk = max(1, _POSTERIOR_CELLS // nodes)
    parts = []
    for start in range(0, n, chunk):
        batch = McatBatch(tables, min(chunk, n - start), rng)
        own = answers[start:start + chunk]
        active = np.arange(own.shape[0])
        while active.size:
            active = active[~batch.check_stop(active)]
            if not active.size:
                break
            items = batch.select(active)
            batch.reason[active[items < 0]] = 2
            active, items = active[items >= 0], items[items >= 0]
            batch.record(active, items, own[active, items])
        parts.append(batch)

    def join(name):
        return np.concatenate([getattr(part, name) for part in parts])

    return McatSimulation(join("theta"), join("covariance"), join("length"), join("order"),
                          join("answers"), join("decision"), join("reason"))


@dataclass(frozen=True)
class McatResult:
    """A session's state: items and responses in order, theta (m,), se (m,), covariance
    (m, m), composite and composite_se (None without weights), done, decision."""

    items: tuple
    responses: tuple
    theta: tuple
    se: tuple
    covariance: tuple
    composite: float | None
    composite_se: float | None
    done: bool
    decision: int


class McatSession:
    """One examinee's multidimensional test, answer by answer, with a step trace per
    choice (`last_step`, the shape of `engine.session.step_trace` where it applies:
    ``theta`` and ``se`` are lists, one per factor).

    As `engine.session.Session`, it says which exposure decisions a rebuild needs
    besides the answers: under live item eligibility the item positions drawn
    ineligible at the start (`ineligible`, also in the first step's trace), which a
    rebuild is given back (`ineligible=`) as the live probabilities of that moment are
    gone; every other draw is replayed from the seed. There are no θ bands (`band`
    None)."""

    band = None
    ineligible_bands = None

    def __init__(self, tables, seed=1, ineligible=()):
        self.tables = tables
        self._batch = McatBatch(tables, 1, np.random.default_rng(seed))
        self._row = np.zeros(1, dtype=np.intp)
        self.ineligible = ()
        if tables.design.live_eligibility:
            self.ineligible = tuple(sorted(int(j) for j in ineligible))
            self._batch.pool[0, list(self.ineligible)] = False
        self.done = False
        self.last_step = None

    @classmethod
    def start(cls, tables, seed=1, eligibility=None):
        """A new session; under live item eligibility each item is eligible for it with
        its probability in `eligibility` ((n_items,); None: every item), drawn as a
        unidimensional session draws it (`engine.session.eligibility_draw`)."""
        ineligible = ()
        if tables.design.live_eligibility and eligibility is not None:
            draw = eligibility_draw(seed, tables.items.n_items)
            ineligible = np.flatnonzero(draw >= np.asarray(eligibility, dtype=float))
        return cls(tables, seed, ineligible=ineligible)

    def next_item(self):
        """The next item's position, or None when the test is over."""
        batch = self._batch
        trace = {"step": int(batch.length[0]) + 1, "theta": _rounded(batch.theta[0]),
                 "se": _rounded(batch.se[0])}
        if trace["step"] == 1 and self.ineligible:
            trace["ineligible"] = list(self.ineligible)
        if self.done or batch.check_stop(self._row)[0]:
            self.done = True
            trace["stop"] = STOP_REASONS[max(int(batch.reason[0]), 1)]
            self.last_step = trace
            return None
        item = int(batch.select(self._row)[0])
        if item < 0:
            self.done = True
            batch.reason[0] = 2
            trace["stop"] = "pool_exhausted"
            self.last_step = trace
            return None
        row = batch.last_score[0]
        trace.update(item=item, eligible=int(np.isfinite(row).sum()),
                     candidates=[[int(j), _rounded(row[j])]
                                 for j in top_of_row(row, TRACE_CANDIDATES)])
        self.last_step = trace
        return item

    def answer(self, item, response):
        """Record the answer `response` (a category) to item position `item`."""
        items = self.tables.items
        if not 0 <= item < items.n_items or self._batch.administered[0, item]:
            raise ValueError(f"item {item} is not one this test can take now")
        if not 0 <= response < items.n_categories[item]:
            raise ValueError(f"response {response} is outside item {item}'s categories")
        if self._batch.length[0] >= self.tables.design.max_items:
            raise ValueError("the test has reached its maximum length")
        self._batch.record(self._row, np.array([item]), np.array([response]))

    def result(self):
        batch, tables = self._batch, self.tables
        count = int(batch.length[0])
        value = spread = None
        if tables.weights is not None:
            value, spread = (float(x[0]) for x in composite(batch.theta[:1], batch.covariance[:1],
                                                            tables.weights))
        return McatResult(tuple(int(j) for j in batch.order[0, :count]),
                          tuple(int(x) for x in batch.answers[0, :count]),
                          tuple(batch.theta[0].tolist()), tuple(batch.se[0].tolist()),
                          tuple(map(tuple, batch.covariance[0].tolist())), value, spread,
                          self.done, int(batch.decision[0]))


def _rounded(values):
    """A trace's numbers: 6 significant digits."""
    if np.ndim(values) == 0:
        return float(f"{values:.6g}")
    return [float(f"{value:.6g}") for value in values]
