"""Calibration speed and recovery against girth (same run) and R mirt (recorded).

Data: the simulated sets of shared/refs (their generating recipe is in the
`*_truth.json` files) when ../shared is beside the repository, else the same
recipe simulated here. mirt's times are the ones recorded in shared/refs on a
machine of the same kind (R 4.2.2, one thread).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from irtcat.calibration.mml_em import MMLCalibrator, Priors
from irtcat.calibration.responses import from_dense

from .common import timed
from .peers import run_peer

SHARED_REFS = Path(__file__).resolve().parents[2] / "shared" / "refs"


def _rmse(estimate, truth):
    return float(np.sqrt(np.mean((np.asarray(estimate) - np.asarray(truth)) ** 2)))


def _load(name, model):
    """(responses (n, J) with NaN, truth dict of arrays, mirt reference or None)."""
    truth = json.loads((SHARED_REFS / f"{name}_truth.json").read_text())
    responses = pd.read_csv(SHARED_REFS / f"{name}.csv").iloc[:, 1:].to_numpy(float)
    items = truth["items"]
    arrays = {key: np.array([item[key] for item in items]) for key in items[0]
              if key in ("a", "b", "c")}
    reference = SHARED_REFS / f"{name}__{model}.json"
    return responses, arrays, json.loads(reference.read_text()) if reference.exists() else None


def _ours(responses, model, priors=None, m_step="mirt"):
    def fit():
        return MMLCalibrator(model, priors=priors, m_step=m_step).fit(from_dense(responses))
    seconds, calibrator = timed(fit)
    return seconds, calibrator


_GIRTH_2PL = """
import girth
data = inputs['responses']
dataset = np.where(np.isnan(data), girth.utilities.INVALID_RESPONSE, data).astype(int).T
started = time.perf_counter()
out = girth.twopl_mml(dataset)
result = {'seconds': time.perf_counter() - started,
          'a': np.asarray(out['Discrimination']).tolist(),
          'b': np.asarray(out['Difficulty']).tolist()}
"""

_GIRTH_GRM = """
import girth
data = inputs['responses']
dataset = np.where(np.isnan(data), girth.utilities.INVALID_RESPONSE, data + 1).astype(int).T
started = time.perf_counter()
out = girth.grm_mml(dataset)
result = {'seconds': time.perf_counter() - started,
          'a': np.asarray(out['Discrimination']).tolist(),
          'b': np.asarray(out['Difficulty']).tolist()}
"""

_GIRTH_3PL = """
import girth
data = inputs['responses']
dataset = np.where(np.isnan(data), girth.utilities.INVALID_RESPONSE, data).astype(int).T
started = time.perf_counter()
out = girth.threepl_mml(dataset)
result = {'seconds': time.perf_counter() - started,
          'a': np.asarray(out['Discrimination']).tolist(),
          'b': np.asarray(out['Difficulty']).tolist()}
"""


def _row(label, seconds, a_rmse, b_rmse, note=""):
    time_text = f"{seconds:.2f} s" if seconds is not None else "–"
    a_text = f"{a_rmse:.3f}" if a_rmse is not None else "–"
    b_text = f"{b_rmse:.3f}" if b_rmse is not None else "–"
    return (label, time_text, a_text, b_text, note)


def dense_2pl():
    responses, truth, reference = _load("sim2pl_20000x100", "2pl")
    seconds, calibrator = _ours(responses, "2pl")
    irt = calibrator.blocks_[0].irt()
    rows = [_row("irtcat MML-EM (default: mirt's M-step)", seconds, _rmse(irt["a"], truth["a"]),
                 _rmse(irt["b"], truth["b"]),
                 f"{calibrator.n_iter_} cycles; logLik "
                 f"{calibrator.log_likelihood_ - reference['logLik']:+.4f} from mirt's")]
    newton_seconds, newton = _ours(responses, "2pl", m_step="newton")
    irt = newton.blocks_[0].irt()
    rows.append(_row("irtcat MML-EM, --m-step newton", newton_seconds, _rmse(irt["a"], truth["a"]),
                     _rmse(irt["b"], truth["b"]), f"{newton.n_iter_} cycles"))
    girth, note = run_peer(_GIRTH_2PL, {"responses": responses})
    if girth:
        rows.append(_row("girth 2PL MML (same run)", girth["seconds"],
                         _rmse(girth["a"], truth["a"]), _rmse(girth["b"], truth["b"]),
                         f"irtcat {girth['seconds'] / seconds:.0f}x faster (newton "
                         f"{girth['seconds'] / newton_seconds:.0f}x)"))
    else:
        rows.append(_row("girth 2PL MML", None, None, None, note))
    rows.append(_row("R mirt 1.45.1 (recorded in shared/refs)", reference["elapsed_seconds"],
                     reference["recovery"]["rmse_a"], reference["recovery"]["rmse_b"],
                     f"{reference['em_cycles']} cycles; irtcat "
                     f"{reference['elapsed_seconds'] / seconds:.1f}x faster (newton "
                     f"{reference['elapsed_seconds'] / newton_seconds:.1f}x)"))
    return "2PL, 20,000 x 100 dense (sim2pl_20000x100)", rows


def sparse_3pl():
    responses, truth, reference = _load("sim3pl_20000x100_m30", "3pl")
    prior_reference = json.loads((SHARED_REFS / "sim3pl_20000x100_m30__3pl_prior.json")
                                 .read_text())
    rows = []
    for label, priors, mirt in (("no prior", None, reference),
                                ("Beta(5, 17) prior on c", Priors(c=(5.0, 17.0)),
                                 prior_reference)):
        import warnings

        from irtcat.engine import ConvergenceWarning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            seconds, calibrator = _ours(responses, "3pl", priors)
        irt = calibrator.blocks_[0].irt()
        rows.append(_row(f"irtcat MML-EM, {label}", seconds, _rmse(irt["a"], truth["a"]),
                         _rmse(irt["b"], truth["b"]),
                         f"{calibrator.n_iter_} cycles, converged {calibrator.converged_}, "
                         f"RMSE c {_rmse(irt['c'], truth['c']):.3f}"))
        recovery = mirt["recovery"]
        rows.append(_row(f"R mirt, {label} (recorded)", mirt["elapsed_seconds"],
                         recovery["rmse_a"], recovery["rmse_b"],
                         f"{mirt['em_cycles']} cycles; RMSE c {recovery.get('rmse_c', 0):.3f}"))
    girth, note = run_peer(_GIRTH_3PL, {"responses": responses})
    if girth:
        rows.append(_row("girth 3PL MML (same run)", girth["seconds"],
                         _rmse(girth["a"], truth["a"]), _rmse(girth["b"], truth["b"]), ""))
    else:
        rows.append(_row("girth 3PL MML", None, None, None, note))
    return "3PL, 20,000 x 100, 30 items answered each (sim3pl_20000x100_m30)", rows


def graded():
    responses, _, reference = _load("simgrm_5000x30_K5", "grm")
    truth_items = json.loads((SHARED_REFS / "simgrm_5000x30_K5_truth.json").read_text())["items"]
    true_a = np.array([item["a"] for item in truth_items])
    true_b = np.array([item["b"] for item in truth_items])
    rows = []
    for label, m_step in (("irtcat MML-EM, --m-step newton", "newton"),
                          ("irtcat MML-EM (default: mirt's M-step)", "mirt")):
        seconds, calibrator = _ours(responses, "grm", m_step=m_step)   # the default's stays
        irt = calibrator.blocks_[0].irt()
        rows.insert(0, _row(label, seconds, _rmse(irt["a"], true_a), _rmse(irt["b"], true_b),
                            f"{calibrator.n_iter_} cycles"))
    girth, note = run_peer(_GIRTH_GRM, {"responses": responses})
    if girth:
        b = np.array(girth["b"], dtype=float)[:, : true_b.shape[1]]
        rows.append(_row("girth GRM MML (same run)", girth["seconds"], _rmse(girth["a"], true_a),
                         _rmse(b, true_b), f"irtcat {girth['seconds'] / seconds:.0f}x faster"))
    else:
        rows.append(_row("girth GRM MML", None, None, None, note))
    recovery = reference["recovery"]
    rows.append(_row("R mirt 1.45.1 (recorded)", reference["elapsed_seconds"],
                     recovery["rmse_a"], recovery["rmse_b"], f"{reference['em_cycles']} cycles"))
    return "GRM, 5,000 x 30, 5 categories (simgrm_5000x30_K5)", rows


def sparse_million():
    """1,000,000 persons x 1,000 items, 30 responses each, in a child process for its memory."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.sparse_million"],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - started
    rows = [_row("irtcat MML-EM on the response log (CSR)", result["fit_seconds"],
                 result["rmse_a"], result["rmse_b"],
                 f"{result['cycles']} cycles; peak RSS {result['peak_mib']:.0f} MiB for the "
                 f"whole process (simulation included); {wall:.0f} s with simulation")]
    rows += sparse_million_cli()
    return "2PL, 1,000,000 persons x 1,000 items, 30 responses each", rows


def sparse_million_cli():
    """The same response log as a 30,000,000-row long CSV through `irtcat calibrate`."""
    from .common import irtcat_command, run_command
    from .sparse_million import N_ITEMS, N_PERSONS, simulate

    a, b, person, item, response = simulate(np.random.default_rng(5))
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "log.csv"
        pd.DataFrame({
            "person_id": pd.Categorical.from_codes(person, [f"p{i}" for i in range(N_PERSONS)]),
            "item_id": pd.Categorical.from_codes(item, [f"Q{j}" for j in range(N_ITEMS)]),
            "response": response}).to_csv(log, index=False)
        size = log.stat().st_size / 2**20
        del person, item, response
        seconds, peak = run_command(irtcat_command() + [
            "calibrate", str(log), "--model", "2pl", "--quiet", "--out", str(Path(folder) /
                                                                             "bank.json")])
        bank = json.loads((Path(folder) / "bank.json").read_text())
    by_id = {item["id"]: item for item in bank["items"]}
    fitted_a = np.array([by_id[f"Q{j}"]["a"] for j in range(N_ITEMS)])
    fitted_b = np.array([by_id[f"Q{j}"]["b"] for j in range(N_ITEMS)])
    return [_row("`irtcat calibrate LOG.csv --model 2pl` (read, fit, write)", seconds,
                 _rmse(fitted_a, a), _rmse(fitted_b, b),
                 f"{size:.0f} MiB long CSV; peak RSS {peak:.0f} MiB")]


HEADER = ("engine", "time", "RMSE a", "RMSE b", "note")


def run():
    return [(title, HEADER, rows)
            for title, rows in (dense_2pl(), sparse_3pl(), graded(), sparse_million())]
