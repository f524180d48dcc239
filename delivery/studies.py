"""Simulation studies: named CAT designs x simulees, cut into units of work of a fixed
size and seeded so that a study's results do not depend on where its units run.

A study is a bank, a list of named designs and a number of simulees per design. The
designs come as one JSON document (`read_designs`)::

    {"base": {CAT configuration},
     "designs": [{"name": "mfi-30", "config": {overrides}}, ...]}

``base`` (optional, default ``{}``) and each ``config`` (optional, default ``{}``) are
CAT configurations of spec/FORMATS.md; a design is its ``config`` merged over ``base``
key by key (an object merges into an object, any other value, a list or null
included, replaces). Names are unique.

Work is cut into units of UNIT simulees (the last unit of a design may be smaller):
unit k of design d simulates simulees k*UNIT to (k+1)*UNIT - 1. Every random number
comes from a `numpy.random.SeedSequence` keyed by the study's seed and the unit, never
by the worker or the order units finish in:

- the abilities of block k are ``prior_mean + prior_sd * z`` with z standard normal
  from key (seed, ABILITIES, k): every design meets the same simulees (common random
  numbers) when the designs share their prior;
- the tests of design d, block k draw from key (seed, TESTS, d, k);
- a design with Sympson-Hetter control and no parameters is tuned once, before its
  units, from key (seed, TUNING, d) (`engine.simulate.tune_sympson_hetter`).

A design under item-eligibility control is one unit, whatever its size: its
eligibility probabilities are learnt from batch to batch over all its simulees, as in
`irtcat simulate`, so cutting it would change what it measures. Units run on a
`distributed.Client` (`client.submit`) when one is given, in a loop otherwise; their
results are put together in unit order, so one process, two workers or a hundred give
the same study, number for number. The report of each design is made from those results
by `irtcat.api.simulation_report.report` (the API layer: `irtcat study`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from irtcat.engine.simulate import run_cat, tune_sympson_hetter, tuning_reached
from irtcat.itembank.errors import DataFormatError

from .cat_config import design_from_config

UNIT = 500
"""Simulees of one unit of work: part of a study's definition, like its seed."""
MAX_DESIGNS = 1000
ABILITIES, TESTS, TUNING = 0, 1, 2
"""First word of each seed key (see the module docstring)."""


@dataclass(frozen=True)
class StudyDesign:
    """A named design of a study: its merged CAT configuration and the `CATDesign`."""

    name: str
    config: dict
    design: object


@dataclass(frozen=True, eq=False)
class DesignResult:
    """The simulees of one design, put together in unit order.

    true_theta : ndarray of shape (n,), the simulated abilities
    results : list of `engine.simulate.CATResults`, the units' batches in order
        (what `api.simulation_report.report` reads)
    design : the CATDesign run (with tuned Sympson-Hetter parameters when it was tuned)
    tuning : the tuning block (rounds, max_exposure_by_round, target_met, and
        unreachable when it stopped early) or None
    """

    name: str
    design: object
    true_theta: np.ndarray
    results: list
    tuning: dict | None = None

    def joined(self, name):
        """One array of every simulee: `name` of the CATResults, concatenated."""
        return np.concatenate([getattr(part, name) for part in self.results])


def merged(base, override):
    """`override` merged over `base`: objects key by key, anything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def read_designs(document, bank):
    """The `StudyDesign`s of a designs document (module docstring); DataFormatError
    naming the design for anything wrong, a design the bank cannot honour included."""
    if not isinstance(document, dict):
        raise DataFormatError("expected an object with a 'designs' list")
    unknown = sorted(set(document) - {"base", "designs"})
    if unknown:
        raise DataFormatError(f"unknown key {unknown[0]!r} (a study has 'base' and 'designs')")
    base = document.get("base", {})
    if not isinstance(base, dict):
        raise DataFormatError("'base' must be an object (a CAT configuration)")
    entries = document.get("designs")
    if not isinstance(entries, list) or not entries:
        raise DataFormatError("'designs' must be a non-empty list")
    if len(entries) > MAX_DESIGNS:
        raise DataFormatError(f"a study has at most {MAX_DESIGNS} designs, got {len(entries)}")
    designs, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"designs[{index}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{where} must be an object with a 'name'")
        unknown = sorted(set(entry) - {"name", "config"})
        if unknown:
            raise DataFormatError(f"{where}: unknown key {unknown[0]!r} (a design has "
                                  "'name' and 'config')")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataFormatError(f"{where} needs a name (a non-empty string)")
        if name in seen:
            raise DataFormatError(f"{where}: the name {name!r} is used twice")
        seen.add(name)
        override = entry.get("config", {})
        if not isinstance(override, dict):
            raise DataFormatError(f"{where} ({name!r}): 'config' must be an object")
        config = merged(base, override)
        try:
            design = design_from_config(config, bank)
        except DataFormatError as error:
            raise DataFormatError(f"{where} ({name!r}): {error}") from None
        designs.append(StudyDesign(name, config, design))
    return designs


def _generator(seed, *key):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def abilities(design, seed, blocks, examinees, unit=UNIT):
    """The true abilities of `blocks` (block numbers, in order) under `design`'s prior:
    ndarray of shape (simulees of those blocks,)."""
    scoring = design.scoring
    parts = [_generator(seed, ABILITIES, k).standard_normal(
        min(unit, examinees - k * unit)) for k in blocks]
    return scoring.prior_mean + scoring.prior_sd * np.concatenate(parts)


def units(designs, examinees, unit=UNIT):
    """Every unit of a study, in order: (design index, blocks (a tuple of block numbers))."""
    n_blocks = -(-examinees // unit)
    out = []
    for index, entry in enumerate(designs):
        if entry.design.exposure.method == "item-eligibility":
            out.append((index, tuple(range(n_blocks))))
        else:
            out.extend((index, (k,)) for k in range(n_blocks))
    return out


def needs_tuning(design):
    """Whether `design` has Sympson-Hetter control without parameters."""
    return design.exposure.method == "sympson-hetter" and design.exposure.sympson_hetter is None


def tuned(params, design, seed, index):
    """(design with Sympson-Hetter parameters tuned from key (seed, TUNING, index), the
    tuning block)."""
    parameters, history = tune_sympson_hetter(params, design, _generator(seed, TUNING, index))
    design = dataclasses.replace(design, exposure=dataclasses.replace(
        design.exposure, sympson_hetter=parameters))
    tuning = {"rounds": len(history), "max_exposure_by_round": list(history),
              "target_met": tuning_reached(design, history)}
    if history.unreachable:
        tuning["unreachable"] = history.unreachable
    return design, tuning


def run_unit(params, design, seed, index, blocks, examinees, unit=UNIT, groups=None):
    """One unit's simulees and tests: (true_theta (n,), list of CATResults).

    groups : {key: (n_items,) bool mask} passed to `run_cat` (each group's own
        estimate), or None
    """
    true_theta = abilities(design, seed, blocks, examinees, unit)
    results = run_cat(params, design, _generator(seed, TESTS, index, blocks[0]),
                      true_theta=true_theta, groups=groups)
    return true_theta, results


def _first(pair):
    return pair[0]


def run_study(bank, designs, examinees, seed, client=None, *, unit=UNIT, groups=None):
    """Run every design of a study on `examinees` simulees each.

    Parameters
    ----------
    bank : ItemBank
    designs : list of StudyDesign (`read_designs`)
    examinees : int, simulees per design
    seed : int
    client : distributed.Client, optional: the units run on its workers (else here)
    unit : simulees per unit of work (part of the study, like the seed)
    groups : callable, optional: ``groups(design)`` -> the `run_cat` groups of a design

    Returns
    -------
    list of DesignResult, one per design in order; the same for any client.
    """
    return _run(bank.params, designs, examinees, seed, client, unit, groups)


def simulate_design(params, design, examinees, seed, client=None, *, unit=UNIT, groups=None):
    """One design simulated as a study of that design alone (design index 0): a
    `DesignResult`, the same for any client; what a queued simulation can run on a
    cluster. Its report: ``api.simulation_report.report(result.results, result.design,
    seconds, true_theta=result.true_theta, seed=seed)``.

    params : ItemParameters of the bank; design : CATDesign; groups : as `run_study`'s
    """
    return _run(params, [StudyDesign("", {}, design)], examinees, seed, client, unit,
                groups)[0]


def _run(params, designs, examinees, seed, client, unit, groups):
    work = units(designs, examinees, unit)
    masks = [groups(entry.design) if groups else None for entry in designs]
    if client is None:
        prepared = [tuned(params, entry.design, seed, index) if needs_tuning(entry.design)
                    else (entry.design, None) for index, entry in enumerate(designs)]
        outputs = [run_unit(params, prepared[index][0], seed, index, blocks, examinees, unit,
                            masks[index]) for index, blocks in work]
    else:
        [shared] = client.scatter([params], broadcast=True, hash=False)
        prepared, design_of = [], []
        for index, entry in enumerate(designs):
            if needs_tuning(entry.design):
                pair = client.submit(tuned, shared, entry.design, seed, index, pure=False,
                                     retries=2)
                prepared.append(pair)
                design_of.append(client.submit(_first, pair, pure=False))
            else:
                prepared.append((entry.design, None))
                design_of.append(entry.design)
        futures = [client.submit(run_unit, shared, design_of[index], seed, index, blocks,
                                 examinees, unit, masks[index], pure=False, retries=2)
                   for index, blocks in work]
        outputs = client.gather(futures)
        prepared = [pair if isinstance(pair, tuple) else pair.result() for pair in prepared]
    by_design = [[] for _ in designs]
    for (index, _), output in zip(work, outputs, strict=True):
        by_design[index].append(output)
    return [DesignResult(entry.name, prepared[index][0],
                         np.concatenate([theta for theta, _ in by_design[index]]),
                         [part for _, parts in by_design[index] for part in parts],
                         prepared[index][1])
            for index, entry in enumerate(designs)]
