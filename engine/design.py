"""A computer-adaptive test design: one frozen settings object per role.

`CATDesign` is composed of the settings of each role of the engine (in
catsim's vocabulary): how answers are scored (`Scoring`), how the next item
is selected (`Selection`), exposure control (`Exposure`), content rules
(`Content`), when a test stops (`Stopping`) and where pretest items go
(`Pretest`). A role's method is a name looked up once, in its module's
registry, when a test is built from the design; a name that is not in the
registry is refused here, where the design is made.

The engine knows nothing of skill standards or item ids: items are positions
in the bank, and content groups are boolean item masks under keys the caller
chooses (any hashable value).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .ability import ESTIMATORS
from .content import METHODS
from .exposure import CONTROLS
from .selection import CRITERIA
from .stopping import CLASSIFIERS, COMBINE

# The names each role's registry knows.
SCORING_METHODS = tuple(ESTIMATORS)
SELECTION_METHODS = tuple(CRITERIA)
EXPOSURE_METHODS = tuple(CONTROLS)
CONTENT_METHODS = tuple(METHODS)
CLASSIFICATION_METHODS = tuple(CLASSIFIERS)
COMBINE_METHODS = tuple(COMBINE)


def _check(value, options, what):
    if value not in options:
        raise ValueError(f"{what} must be one of {', '.join(options)}, got {value!r}")


@dataclass(frozen=True)
class Scoring:
    """The estimate of theta after each answer, on an EAP grid of `n_nodes` over `theta_range`
    with a normal prior; `start_theta` before the first answer."""

    method: str = "eap"
    prior_mean: float = 0.0
    prior_sd: float = 1.0
    n_nodes: int = 121
    theta_range: tuple = (-6.0, 6.0)
    start_theta: float = 0.0

    def __post_init__(self):
        _check(self.method, SCORING_METHODS, "scoring method")


@dataclass(frozen=True)
class Selection:
    """The criterion ranking the items; `randomesque` picks among the best k; `progressive`
    blends the criterion with a random draw that fades over the test; `strata` for astrat."""

    method: str = "mfi"
    randomesque: int = 1
    progressive: bool = False
    strata: int = 4

    def __post_init__(self):
        _check(self.method, SELECTION_METHODS, "selection method")


@dataclass(frozen=True)
class Exposure:
    """Exposure control: `target` the highest exposure rate aimed at, `k` the randomesque
    group size, `sympson_hetter` the (n_items,) administration probabilities (None: untuned),
    `theta_bands` increasing θ edges of the bands live counts are kept per (() none)."""

    method: str = "none"
    target: float = 0.25
    k: int = 5
    sympson_hetter: np.ndarray | None = None
    theta_bands: tuple = ()

    def __post_init__(self):
        _check(self.method, EXPOSURE_METHODS, "exposure method")


@dataclass(frozen=True)
class ContentRule:
    """At least `min` and at most `max` items from the items of the group keyed `group`."""

    group: Hashable
    min: int = 0
    max: int | None = None


@dataclass(frozen=True)
class Content:
    """Content rules over named item groups, and enemy sets (never two items of one set).

    groups : mapping of a caller's key to a (n_items,) bool mask
    rules : ContentRule, ... (each names a key of `groups`)
    enemies : (k,) int arrays of item positions
    """

    rules: tuple = ()
    groups: Mapping = field(default_factory=dict)
    method: str = "kingsbury-zara"
    enemies: tuple = ()

    def __post_init__(self):
        _check(self.method, CONTENT_METHODS, "content method")


@dataclass(frozen=True)
class Classification:
    """Pass/fail decision against `cut` by "sprt" or "ci"."""

    cut: float
    method: str = "sprt"
    delta: float = 0.3
    alpha: float = 0.05
    beta: float = 0.05

    def __post_init__(self):
        _check(self.method, CLASSIFICATION_METHODS, "classification method")


@dataclass(frozen=True)
class Stopping:
    """A test ends at `max_items` scored items; from `min_items` on when the SE is below `se`,
    theta moved less than `delta_theta`, or the `classification` is decided; `combine`
    "any" or "all" of the rules given."""

    min_items: int = 5
    max_items: int = 30
    se: float | None = 0.3
    delta_theta: float | None = None
    classification: Classification | None = None
    combine: str = "any"

    def __post_init__(self):
        _check(self.combine, COMBINE_METHODS, "stopping combine")


@dataclass(frozen=True)
class Pretest:
    """`count` unscored items from `items` (positions) at random places of each test, never
    first; `operational` the (n_items,) bool mask of items that may be scored (None: all)."""

    items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    count: int = 0
    operational: np.ndarray | None = None


@dataclass(frozen=True)
class CATDesign:
    """A test design in engine terms (item positions and masks, no ids or standards)."""

    scoring: Scoring = field(default_factory=Scoring)
    selection: Selection = field(default_factory=Selection)
    exposure: Exposure = field(default_factory=Exposure)
    content: Content = field(default_factory=Content)
    stopping: Stopping = field(default_factory=Stopping)
    pretest: Pretest = field(default_factory=Pretest)
