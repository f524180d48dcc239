"""Child process of the sparse calibration benchmark: prints one JSON line.

Simulates a 2PL response log (a ~ lognormal(0, 0.25), b ~ N(0, 1), theta ~
N(0, 1), seed 5): 1,000,000 persons, each answering 30 of 1,000 items drawn
at random, and calibrates it from the log without ever forming the
persons x items matrix.
"""

import json
import resource
import time

import numpy as np

from irtcat.calibration.mml_em import MMLCalibrator
from irtcat.calibration.responses import from_coordinates

N_PERSONS, N_ITEMS, PER_PERSON = 1_000_000, 1_000, 30


def simulate(rng):
    a, b = rng.lognormal(0.0, 0.25, N_ITEMS), rng.normal(0.0, 1.0, N_ITEMS)
    theta = rng.normal(size=N_PERSONS)
    items = np.empty((N_PERSONS, PER_PERSON), dtype=np.int32)
    for start in range(0, N_PERSONS, 10_000):   # 30 distinct items per person, in blocks
        stop = min(N_PERSONS, start + 10_000)
        items[start:stop] = np.argpartition(rng.random((stop - start, N_ITEMS)), PER_PERSON,
                                            axis=1)[:, :PER_PERSON]
    person = np.repeat(np.arange(N_PERSONS, dtype=np.int32), PER_PERSON)
    item = items.ravel()
    p = 1.0 / (1.0 + np.exp(-a[item] * (theta[person] - b[item])))
    return a, b, person, item, (rng.random(p.size) < p).astype(np.int8)


def main():
    a, b, person, item, response = simulate(np.random.default_rng(5))
    started = time.perf_counter()
    data = from_coordinates(N_PERSONS, N_ITEMS, person, item, response)
    del person, item, response
    calibrator = MMLCalibrator("2pl").fit(data)
    seconds = time.perf_counter() - started
    irt = calibrator.blocks_[0].irt()
    print(json.dumps({
        "fit_seconds": seconds, "cycles": calibrator.n_iter_,
        "rmse_a": float(np.sqrt(np.mean((irt["a"] - a) ** 2))),
        "rmse_b": float(np.sqrt(np.mean((irt["b"] - b) ** 2))),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
