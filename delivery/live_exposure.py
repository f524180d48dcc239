"""Exposure across the live sessions of every worker: eligibility from the shared counts,
the exposure figures of a test, and session traces as an admin reads them.

The counts are the store's (`irtcat.itembank.exposure`), moved in the transaction
that gives each item. A test whose exposure method is "item-eligibility" draws each
new session's eligible items from probabilities computed from those counts (van der
Linden & Veldkamp, 2007, with Revuelta & Ponsoda's 1998 restriction of items at the
target; `irtcat.engine.exposure.live_eligibility`), which a worker
re-reads at most every ELIGIBILITY_SECONDS; a multidimensional test with a target and
no fixed parameters does the same. Sympson-Hetter parameters are part of the
test's configuration (``exposure.parameters``) and apply to every session as is.

A test with θ bands (``exposure.theta_bands``) keeps its counts per band of the θ
each item was chosen at too; under item eligibility each band's probabilities come
from that band's counts (conditional item eligibility: van der Linden & Veldkamp,
2007, with r_max the target in every band), and its figures give each band's rates.

Rates count operational and pretest items apart: the maximum, the overlap rate
(the expected share of items two sessions have in common, Chen, Ankenmann & Spray,
2003: sum c_i (c_i - 1) / (n (n - 1)) / mean length) and the pool use (share of the
bank's operational items never given) are operational figures.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from irtcat.engine.exposure import live_eligibility
from irtcat.itembank.exposure import band_counts, daily_counts, live_counts

ELIGIBILITY_SECONDS = 1.0          # how long a worker reuses the counts it read
ROUNDING = 4


class LiveEligibility:
    """Per worker: the item-eligibility probabilities of each test's bank, recomputed from
    the stored counts once they are ELIGIBILITY_SECONDS old."""

    def __init__(self, database, seconds=ELIGIBILITY_SECONDS):
        self.database, self.seconds = database, seconds
        self._cache = {}      # (test_id, id(built)) -> (read at, built, probabilities)
        self._lock = threading.Lock()

    def probabilities(self, test_id, built):
        """(n_items,) probability that each of `built`'s items is eligible for a new
        session (1 for pretest items, which the control never restricts); with θ bands
        (n_bands, n_items), a row per band from that band's counts."""
        key = (test_id, id(built))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] is built \
                and time.monotonic() - cached[0] < self.seconds:
            return cached[2]
        if built.theta_bands:
            probability = self._by_band(test_id, built)
        else:
            sessions, administered, ineligible = live_counts(self.database, test_id)
            ids = [item["id"] for item in built.items]
            given = np.array([administered.get(item_id, 0) for item_id in ids], dtype=float)
            drawn_out = np.array([ineligible.get(item_id, 0) for item_id in ids], dtype=float)
            probability = live_eligibility(given, sessions - drawn_out, sessions,
                                           built.exposure_target)
        probability[..., pretest_mask(built)] = 1.0
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), built, probability)
        return probability


    def _by_band(self, test_id, built):
        """(n_bands, n_items) eligibility probabilities, each band's from its counts."""
        sessions, rows = band_counts(self.database, test_id)
        n_bands = len(built.theta_bands) + 1
        column = {item["id"]: j for j, item in enumerate(built.items)}
        given = np.zeros((n_bands, len(built.items)))
        drawn_out = np.zeros_like(given)
        for band, item_id, pretest, administered, ineligible in rows:
            if not pretest and item_id in column and band < n_bands:
                given[band, column[item_id]] = administered
                drawn_out[band, column[item_id]] = ineligible
        return np.array([live_eligibility(given[band], sessions.get(band, 0) - drawn_out[band],
                                          sessions.get(band, 0), built.exposure_target)
                         for band in range(n_bands)])


def pretest_mask(built):
    """(n_items,) bool: the items `built` delivers as pretest (unscored) items."""
    return np.array([item["status"] == "pretest" for item in built.items], dtype=bool)


def exposure_figures(database, test_id, built):
    """The exposure of `test_id`'s live sessions (API.md, ``GET /v1/tests/{id}/exposure``):
    sessions started, per item rates (operational and pretest apart), the operational
    maximum, overlap rate, mean length and pool use, and the same per UTC day."""
    sessions_by_day, rows = daily_counts(database, test_id)
    sessions = sum(sessions_by_day.values())
    totals = {}
    for _, item_id, pretest, administered, ineligible in rows:
        total = totals.setdefault((item_id, pretest), [0, 0])
        total[0] += administered
        total[1] += ineligible
    operational_ids = [item["id"] for item in built.items if item["status"] != "pretest"]
    items = [{"item_id": item_id, "pretest": pretest, "administered": counts[0],
              "ineligible": counts[1], "rate": _rate(counts[0], sessions)}
             for (item_id, pretest), counts in sorted(totals.items())]
    operational = {item_id: counts[0] for (item_id, pretest), counts in totals.items()
                   if not pretest}
    figures = {"test_id": test_id, "sessions": sessions,
               **_summary(operational, sessions, operational_ids), "items": items, "days": []}
    for day, started in sorted(sessions_by_day.items()):
        that_day = {item_id: administered for d, item_id, pretest, administered, _ in rows
                    if d == day and not pretest}
        figures["days"].append({"day": day, "sessions": started,
                                **_summary(that_day, started, operational_ids)})
    if built.theta_bands:
        figures["bands"] = _band_figures(database, test_id, built.theta_bands, operational_ids)
    return figures


def _band_figures(database, test_id, edges, operational_ids):
    """Per θ band: its edges (None: open), the sessions given an item in it, its
    operational maximum and its items' counts and rates."""
    sessions, rows = band_counts(database, test_id)
    bounds = [None, *edges, None]
    bands = []
    for band in range(len(edges) + 1):
        started = sessions.get(band, 0)
        items = [{"item_id": item_id, "pretest": pretest, "administered": administered,
                  "ineligible": ineligible, "rate": _rate(administered, started)}
                 for b, item_id, pretest, administered, ineligible in rows if b == band]
        given = {item["item_id"]: item["administered"] for item in items
                 if not item["pretest"]}
        bands.append({"band": band, "low": bounds[band], "high": bounds[band + 1],
                      "sessions": started,
                      "max_rate": _summary(given, started, operational_ids)["max_rate"],
                      "items": items})
    return bands


def _rate(count, sessions):
    return round(count / sessions, ROUNDING) if sessions else 0.0


def _summary(given, sessions, bank_ids):
    """max_rate, overlap_rate, mean_length and unused_share of the operational counts
    `given` ({item_id: sessions given it}) over `sessions`; unused_share: the share of
    the bank's operational items (`bank_ids`) given to no session."""
    counts = np.fromiter(given.values(), dtype=float, count=len(given))
    unused = sum(1 for item_id in bank_ids if not given.get(item_id))
    mean_length = counts.sum() / sessions if sessions else 0.0
    pairs = sessions * (sessions - 1.0)
    overlap = float(np.sum(counts * (counts - 1.0)) / pairs / mean_length) \
        if pairs and mean_length else 0.0
    return {"max_rate": _rate(counts.max(initial=0.0), sessions),
            "overlap_rate": round(overlap, ROUNDING),
            "mean_length": round(float(mean_length), 3),
            "unused_share": round(unused / len(bank_ids), ROUNDING) if bank_ids else 0.0}


def trace_view(traces, built):
    """Step traces as an admin reads them: item positions replaced by item ids."""
    def item_id(position):
        return built.items[position]["id"]

    view = []
    for trace in traces:
        step = dict(trace)
        if "item" in step:
            step["item"] = item_id(step["item"])
        for name in ("rejected", "ineligible"):
            if name in step:
                step[name] = [item_id(j) for j in step[name]]
        if "ineligible_bands" in step:
            step["ineligible_bands"] = [[item_id(j) for j in band]
                                        for band in step["ineligible_bands"]]
        if "candidates" in step:
            step["candidates"] = [{"item_id": item_id(j), "value": value}
                                  for j, value in step["candidates"]]
        view.append(step)
    return view


__all__ = ["ELIGIBILITY_SECONDS", "LiveEligibility", "exposure_figures", "pretest_mask",
           "trace_view"]
