"""Mantel-Haenszel DIF against difR.

Times `calibration.dif.mh_dif_score` in process on difR's verbal data (316 x 24),
without and with purification, best of `REPEAT`; difR's `difMH` without
purification took `DIFR_SECONDS` (refs2/verbal__dif.json, `system.time`, median of 3,
recorded on a machine of this kind: R is not installed here). Also the DIF
simulation (4000 x 40) by total score with purification, and by EAP-theta matching
after dropping a quarter of the answers (the pooled calibration not included).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from irtcat.calibration.dif import eap_matching, mh_dif_score, mh_dif_theta
from irtcat.calibration.workflow import calibrate_document
from irtcat.engine.models import parameters_from_entries
from irtcat.itembank.io import ResponseData, read_responses

from .common import timed

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
REPEAT = 20
DIFR_SECONDS = json.loads((DATA / "refs2" / "verbal__dif.json").read_text())[
    "difMH"]["timing"]["elapsed_seconds"]


def _groups(path):
    data = read_responses(path, group="group")
    return data, np.array([code == "1" for code in data.groups])


def run():
    verbal, focal = _groups(DATA / "verbal.csv")
    rows = []
    for purify in (False, True):
        seconds, _ = timed(mh_dif_score, verbal.responses, focal, verbal.item_ids,
                           purify=purify, repeat=REPEAT)
        note = f"difR {DIFR_SECONDS:.3f} s: {DIFR_SECONDS / seconds:.0f}x" if not purify else ""
        rows.append((f"verbal 316 x 24, {'with' if purify else 'no'} purification",
                     f"{seconds * 1000:.1f} ms", note))
    simdif, focal = _groups(DATA / "refs2" / "simdif_2x2000x40.csv")
    seconds, _ = timed(mh_dif_score, simdif.responses, focal, simdif.item_ids, purify=True,
                       repeat=5)
    rows.append(("simdif 4000 x 40, total score, purification", f"{seconds * 1000:.1f} ms", ""))
    keep = np.random.default_rng(20240301).permuted(
        np.broadcast_to(np.arange(40) < 30, simdif.responses.shape), axis=1)
    sparse = np.where(keep, simdif.responses, np.nan)
    document, _ = calibrate_document(ResponseData(simdif.person_ids, simdif.item_ids, sparse),
                                     "2pl", fit=False)
    estimate = eap_matching(sparse, parameters_from_entries(document["items"]))
    seconds, _ = timed(mh_dif_theta, sparse, focal, simdif.item_ids, estimate, purify=True,
                       repeat=3)
    rows.append(("simdif 30 of 40 answers, EAP theta, purification", f"{seconds:.2f} s", ""))
    return [("Mantel-Haenszel DIF (irtcat dif)", ("case", "time", "vs difR"), rows)]
