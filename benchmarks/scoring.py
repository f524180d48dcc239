"""EAP scoring of 1,000,000 persons x 40 items (issue: the foundation).

Measures the in-process `estimate_eap` and the whole `irtcat score` command
(read a 1,000,000-row CSV, score, write the scores).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from irtcat.engine import ItemParameters, estimate_eap

from .common import irtcat_command, run_command, timed

N_PERSONS, N_ITEMS = 1_000_000, 40


def simulate(rng):
    a = rng.lognormal(0.0, 0.25, N_ITEMS)
    b = rng.normal(0.0, 1.0, N_ITEMS)
    theta = rng.normal(0.0, 1.0, N_PERSONS)
    p = 1.0 / (1.0 + np.exp(-a * (theta[:, None] - b)))
    responses = (rng.random((N_PERSONS, N_ITEMS)) < p).astype(float)
    return a, b, theta, responses


def run():
    rng = np.random.default_rng(2026)
    a, b, theta, responses = simulate(rng)
    params = ItemParameters.create("2pl", a, b)
    seconds, estimate = timed(estimate_eap, responses, params, repeat=3)
    rmse = float(np.sqrt(np.mean((estimate.theta - theta) ** 2)))
    rows = [("EAP in process (121 nodes), best of 3", f"{seconds:.2f} s", f"RMSE {rmse:.3f}")]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        item_ids = [f"Q{j + 1}" for j in range(N_ITEMS)]
        table = pd.DataFrame(responses.astype(np.int8), columns=item_ids)
        table.insert(0, "person_id", [f"p{i}" for i in range(N_PERSONS)])
        table.to_csv(folder / "data.csv", index=False)
        bank = {"format": "irtcat-bank/1", "items": [
            {"id": item, "model": "2pl", "a": float(a[j]), "b": float(b[j])}
            for j, item in enumerate(item_ids)]}
        (folder / "bank.json").write_text(json.dumps(bank))
        seconds, peak = run_command(irtcat_command() + [
            "score", str(folder / "data.csv"), "--bank", str(folder / "bank.json"),
            "--out", str(folder / "scores.csv")])
        rows.append(("`irtcat score` end to end (read CSV, EAP, write CSV)", f"{seconds:.2f} s",
                     f"peak RSS {peak:.0f} MiB"))
    return [("EAP scoring, 1,000,000 persons x 40 items (2PL)", ("measure", "time", "note"), rows)]
