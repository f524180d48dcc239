"""`irtcat score` and `irtcat simulate` on a multidimensional bank (an irtcat-bank/1
document with a ``dimensions`` object): the commands' own modules branch here when
the bank has one.

score: ``person_id,theta_F1,se_F1,...`` (factor names from the bank), then
``composite,composite_se`` with ``--weights``; EAP (full grid, up to 3 factors) or MAP.

simulate: the CAT configuration's multidimensional keys (docs/multidimensional-cat.md)
become an `engine.mcat.McatDesign`; true thetas are drawn from the bank's
N(mean, correlation) or read from ``--theta`` (person_id and one column per factor);
the report has the unidimensional report's keys where they apply, ``factors`` (rmse,
bias, mean SE per factor) and ``composite``; ``--persons`` has per-factor columns.
"""

from __future__ import annotations

import sys

from irtcat.api.arguments import UsageError

MULTIDIMENSIONAL_METHODS = ("eap", "map")


def multidimensional_document(path):
    """The bank document at `path` when it is multidimensional, else None."""
    from irtcat.itembank.io import read_json

    document = read_json(path)
    if isinstance(document, dict) and "dimensions" in document:
        return document
    return None


def load_bank(path, document):
    """(items, mean, correlation) of a multidimensional bank document; a malformed one
    is a UsageError naming the file."""
    from irtcat.engine.multidimensional import MultidimensionalItems, latent_population

    if document.get("format") != "irtcat-bank/1":
        raise UsageError(f"{path}: 'format' must be 'irtcat-bank/1'")
    try:
        items = MultidimensionalItems.from_entries(document.get("items"), document["dimensions"])
        mean, correlation = latent_population(document["dimensions"])
    except (ValueError, TypeError) as error:
        raise UsageError(f"{path}: {error}") from None
    return items, mean, correlation


def parse_weights(text, factors):
    """Composite weights of a ``w1,w2,...`` option, one per factor, or None."""
    if text is None:
        return None
    try:
        weights = [float(value) for value in text.split(",")]
    except ValueError:
        raise UsageError(f"--weights: expected numbers separated by commas, got {text!r}") from None
    if len(weights) != len(factors):
        raise UsageError(f"--weights: the bank has {len(factors)} factors "
                         f"({', '.join(factors)}), got {len(weights)} weights")
    return weights


def aligned_responses(data_path, items):
    """(person ids, responses (N, n) in the bank's item order, NaN where not answered)."""
    import numpy as np

    from irtcat.itembank import read_responses

    data = read_responses(data_path)
    position = {item: j for j, item in enumerate(items.ids)}
    unknown = [item for item in data.item_ids if item not in position]
    if unknown:
        raise UsageError(f"item {unknown[0]!r} of the data is not in the bank")
    responses = np.full((len(data.person_ids), items.n_items), np.nan)
    responses[:, [position[item] for item in data.item_ids]] = data.responses
    observed = ~np.isnan(responses)
    over = observed & (np.where(observed, responses, 0) >= items.n_categories)
    if over.any():
        row, col = np.argwhere(over)[0]
        raise UsageError(f"item {items.ids[col]!r}, person {data.person_ids[row]}: response "
                         f"{responses[row, col]:g} is outside the item's categories 0.."
                         f"{items.n_categories[col] - 1}")
    return data.person_ids, responses


def score_lines(person_ids, estimate, factors, weights=None):
    """The scores CSV's lines (header first) of a MultidimensionalEstimate."""
    header = ["person_id"] + [f"{kind}_{name}" for name in factors for kind in ("theta", "se")]
    columns = []
    for f in range(len(factors)):
        columns += [estimate.theta[:, f], estimate.se[:, f]]
    if weights is not None:
        header += ["composite", "composite_se"]
        columns += list(estimate.composite(weights))
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(person_ids, *[[f"{value:.6f}" for value in column]
                                       for column in columns], strict=True))
    return buffer.getvalue().splitlines(keepends=True)


def run_score(args, document):
    """`irtcat score` on a multidimensional bank."""
    from irtcat.engine.mcat_scoring import estimate
    from irtcat.itembank.io import write_atomically

    if args.method not in MULTIDIMENSIONAL_METHODS:
        raise UsageError(f"--method {args.method}: a multidimensional bank is scored by "
                         f"{' or '.join(MULTIDIMENSIONAL_METHODS)}")
    items, mean, correlation = load_bank(args.bank, document)
    weights = parse_weights(args.weights, items.factors)
    person_ids, responses = aligned_responses(args.data, items)
    try:
        result = estimate(responses, items, mean, correlation, args.method)
    except ValueError as error:
        raise UsageError(str(error)) from None
    lines = score_lines(person_ids, result, items.factors, weights)
    if args.out is None:
        sys.stdout.writelines(lines)
    else:
        write_atomically(args.out, lambda handle: handle.writelines(lines))
    return 0


# --- simulate ---------------------------------------------------------------------

UNSUPPORTED_FILES = ("responses", "log", "save_design", "report")


def design_from_config(config, items):
    """The McatDesign of a CAT configuration (a dict) on `items`; UsageError if it does
    not fit (`irtcat.delivery.mcat_config`)."""
    from irtcat.delivery.mcat_config import mcat_design_from_config
    from irtcat.itembank.errors import DataFormatError

    try:
        return mcat_design_from_config(config, items)
    except DataFormatError as error:
        raise UsageError(str(error)) from None


def _true_thetas(path, factors):
    """(person ids, theta (N, m)) of a CSV with person_id and one column per factor."""
    from irtcat.itembank import read_table_columns

    table = read_table_columns(path, ["person_id", *factors])
    return list(table["person_id"]), table[list(factors)].to_numpy(float)


def simulation_report(run, design, items, true_theta, seconds, seed):
    """The report dict: the unidimensional report's keys where they apply, plus
    ``factors`` and ``composite``."""
    import numpy as np

    from irtcat.engine.mcat import STOP_REASONS

    n, factors = run.length.size, items.factors
    counts = np.bincount(run.items[run.items >= 0], minlength=items.n_items)
    mean_length = float(run.length.mean())
    pairs = n * (n - 1)
    overlap = float(np.sum(counts * (counts - 1.0)) / pairs / mean_length) if pairs else 0.0
    error = run.theta - true_theta
    rate = counts / n
    out = {"examinees": int(n), "seed": seed, "mean_length": round(mean_length, 3),
           "rmse": round(float(np.sqrt(np.mean(error**2))), 4),
           "bias": round(float(np.mean(error)), 4),
           "exposure": {"max": round(float(rate.max()), 4), "mean": round(float(rate.mean()), 4),
                        "unused_share": round(float(np.mean(counts == 0)), 4)},
           "overlap_rate": round(overlap, 4),
           "factors": {name: {"rmse": round(float(np.sqrt(np.mean(error[:, f] ** 2))), 4),
                              "bias": round(float(np.mean(error[:, f])), 4),
                              "mean_se": round(float(run.se[:, f].mean()), 4)}
                       for f, name in enumerate(factors)},
           "stop_reasons": {STOP_REASONS[k]: int(np.sum(run.reason == k))
                            for k in range(1, len(STOP_REASONS)) if np.any(run.reason == k)}}
    if design.se is not None:
        out["reached_se"] = round(float(np.mean(np.all(run.se <= np.array(design.se), axis=1))), 4)
    if design.composite_weights is not None:
        from irtcat.engine.mcat_scoring import composite

        weights = np.array(design.composite_weights)
        value, spread = composite(run.theta, run.covariance, weights)
        truth = true_theta @ weights
        out["composite"] = {"weights": list(design.composite_weights),
                            "rmse": round(float(np.sqrt(np.mean((value - truth) ** 2))), 4),
                            "bias": round(float(np.mean(value - truth)), 4),
                            "mean_se": round(float(spread.mean()), 4)}
        if design.cut is not None:
            correct = run.decision == np.where(truth >= design.cut, 1, -1)
            out["classification"] = {"accuracy": round(float(np.mean(correct)), 4),
                                     "mean_length": round(mean_length, 3)}
    out["seconds"] = round(seconds, 3)
    return out


def write_persons(path, person_ids, factors, true_theta, run, item_ids, classified):
    """person_id, true_F..., theta_F..., se_F..., length, items, decision, responses."""
    import csv
    import io

    from irtcat.itembank.io import write_atomically

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["person_id", *[f"true_{f}" for f in factors],
                     *[f"{kind}_{f}" for f in factors for kind in ("theta", "se")],
                     "length", "items", "decision", "responses"])
    outcome = {1: "pass", -1: "fail", 0: ""} if classified else {1: "", -1: "", 0: ""}
    for i, person in enumerate(person_ids):
        count = run.length[i]
        estimates = [f"{value:.6f}" for f in range(len(factors))
                     for value in (run.theta[i, f], run.se[i, f])]
        writer.writerow([person, *[f"{t:.6f}" for t in true_theta[i]], *estimates, count,
                         ";".join(item_ids[j] for j in run.items[i, :count]),
                         outcome[int(run.decision[i])],
                         ";".join(str(x) for x in run.answers[i, :count])])
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))


def run_simulate(args, document):
    """`irtcat simulate` on a multidimensional bank."""
    import time

    import numpy as np

    from irtcat.engine.mcat import McatTables, simulate
    from irtcat.itembank import read_json, write_json

    for name in UNSUPPORTED_FILES:
        if getattr(args, name, None):
            raise UsageError(f"--{name.replace('_', '-')} is not available for a "
                             "multidimensional bank")
    items, mean, correlation = load_bank(args.bank, document)
    config = read_json(args.config)
    if not isinstance(config, dict):
        raise UsageError(f"{args.config}: the CAT configuration must be an object")
    design = design_from_config(config, items)
    if design.live_eligibility:
        raise UsageError("exposure item-eligibility without 'parameters' runs on live "
                         "sessions only: a simulation needs 'parameters'")
    rng = np.random.default_rng(args.seed)
    if args.theta:
        person_ids, true_theta = _true_thetas(args.theta, items.factors)
        if not person_ids:
            raise UsageError("no examinees to simulate: the --theta file has no rows")
    else:
        true_theta = rng.multivariate_normal(mean, correlation, args.examinees)
        person_ids = [f"sim{i + 1}" for i in range(args.examinees)]
    try:
        tables = McatTables(items, mean, correlation, design)
    except ValueError as error:
        raise UsageError(f"the CAT configuration: {error}") from None
    started = time.perf_counter()
    run = simulate(tables, true_theta, seed=args.seed)
    seconds = time.perf_counter() - started
    result = simulation_report(run, design, items, true_theta, seconds, args.seed)
    if args.persons:
        write_persons(args.persons, person_ids, items.factors, true_theta, run, items.ids,
                      design.cut is not None)
    write_json(result, args.out, sys.stdout)
    return 0
