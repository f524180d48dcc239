"""`irtcat score` and `irtcat simulate` on a multidimensional bank (one with a
``dimensions`` object, /work: the shared bank format): the commands' own modules
branch here when the bank has one.

score: ``person_id,theta_F1,se_F1,...`` (factor names from the bank), then
``composite,composite_se`` with ``--weights``; EAP (full grid, up to 3 factors) or MAP.
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
