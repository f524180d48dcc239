"""`irtcat calibrate DATA --model 2pl --factors SPEC`: multidimensional calibration.

`add_arguments` adds ``--factors`` to calibrate's parser; `run_calibrate`
(api/cli.py) hands the run over to `run` when it is given. SPEC is R mirt's
`mirt.model` syntax with item names or 1-based positions
(calibration/factor_spec.py), e.g. ``F1 = i01-i15; F2 = i16-i30; COV = F1*F2``.
The bank written follows the multidimensional bank format: items with a list
of slopes, ``dimensions`` with the factor names and correlation matrix, and
the calibration record (logLik, AIC, BIC, parameters, cycles, and under
``comparison`` the unidimensional fit's and the likelihood-ratio test against
it: calibration/mirt_comparison.py); with ``--se``
the parameters' and correlations' standard errors (calibration/mirt_se.py).
With calibrate's ``--scheduler`` (or $IRTCAT_DASK_SCHEDULER) the E-steps of the fit,
of the unidimensional fit and of the standard errors run on that Dask cluster
(api/cluster_option.py); M2, a pass over the response patterns, runs here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings

import numpy as np

from irtcat.api.arguments import UsageError

_MODELS = ("2pl", "3pl", "grm", "gpcm")


def add_arguments(calibrate):
    calibrate.add_argument("--factors", metavar="SPEC",
                           help="multidimensional: mirt.model syntax with item names or "
                                "positions, e.g. 'F1 = i01-i15; F2 = i16-i30; COV = F1*F2'")
    calibrate.add_argument("--rotate", choices=("oblimin", "varimax"), default=None,
                           help="with --factors N (exploratory): the rotation (default "
                                "oblimin)")
    calibrate.add_argument("--bifactor", metavar="SPEC",
                           help="bifactor: a general factor G on every item and one "
                                "specific factor per group, e.g. 'S1 = i01-i15; S2 = i16-i30'")


def _bifactor_spec(text, item_names):
    from irtcat.calibration.factor_spec import FactorSpec, parse_factor_spec

    groups = parse_factor_spec(text, item_names, every_item=False)
    if groups.free_correlation.any():
        raise ValueError("a bifactor model's factors are orthogonal: no COV")
    if "G" in groups.factors:
        raise ValueError("G names the general factor: name the specific ones otherwise")
    if (groups.loadings.sum(axis=1) > 1).any():
        raise ValueError("an item is in two specific groups")
    loadings = np.hstack([np.ones((len(item_names), 1), bool), groups.loadings])
    m = loadings.shape[1]
    return FactorSpec(["G", *groups.factors], loadings, np.zeros((m, m), bool), text)


def _response_set(data):
    import numpy as np

    from irtcat.calibration.responses import from_coordinates, from_dense

    if hasattr(data, "person_index"):
        return from_coordinates(len(data.person_ids), len(data.item_ids), data.person_index,
                                data.item_index, np.asarray(data.response, dtype=np.intp))
    return from_dense(data.responses)


def _dense(data):
    """(n_persons, n_items) float responses, NaN where missing, of a wide or long log."""
    import numpy as np

    if not hasattr(data, "person_index"):
        return np.asarray(data.responses, dtype=float)
    dense = np.full((len(data.person_ids), len(data.item_ids)), np.nan)
    dense[data.person_index, data.item_index] = data.response
    return dense


def _finite(value):
    """A float, None for NaN (JSON null); lists element-wise."""
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    value = float(value)
    return value if value == value else None


def bank_document(calibrator, item_ids, spec, model, errors=None):
    """The multidimensional bank (dict) of a fitted MirtCalibrator; `errors` the
    dict of calibration.mirt_se.standard_errors, or None."""
    structure = "bifactor" if calibrator.bifactor else "confirmatory"
    standards = spec.standards(general=calibrator.bifactor)
    if calibrator.exploratory:
        standards = [None] * len(item_ids)
    items = []
    for j, item_id in enumerate(item_ids):
        item = {"id": item_id}
        if standards[j] is not None:
            item["standard"] = standards[j]
        item_model = calibrator.models_[j]
        item.update({"model": item_model, "a": [float(v) for v in calibrator.slopes_[j]],
                     "d": calibrator.intercepts_[j]})
        if item_model == "3pl":
            item["c"] = float(calibrator.guessing_[j])
        if errors is not None:
            item["se"] = {"a": _finite(errors["slopes"][j].tolist()),
                          "d": _finite(errors["intercepts"][j])}
            if item_model == "3pl":
                item["se"]["c"] = _finite(errors["guessing"][j])
        items.append(item)
    m = len(spec.factors)
    record = {"model": model, structure_key(calibrator): spec.text,
              "loglik": calibrator.log_likelihood_, "aic": calibrator.aic_, "bic": calibrator.bic_,
              "n_parameters": calibrator.n_parameters_, "iterations": calibrator.n_iter_,
              "converged": calibrator.converged_, "n_persons": calibrator.n_persons_,
              "quadpts": calibrator.n_points}
    dimensions = {"factors": list(spec.factors), "structure": structure,
                  "mean": [0.0] * m, "correlation": calibrator.correlation_.tolist()}
    if errors is not None:
        dimensions["se"] = {"correlation": [_finite(row) for row in
                                            errors["correlation"].tolist()]}
        record["standard_errors"] = "oakes" if errors["positive_definite"] else None
    dimensions["rotation"] = None
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "population": {"mean": 0.0, "sd": 1.0}, "dimensions": dimensions,
            "items": items, "calibration": record}


def _exploratory_spec(count, n_items):
    from irtcat.calibration.exploratory import exploratory_loadings
    from irtcat.calibration.factor_spec import FactorSpec

    if not 2 <= count <= 5:
        raise ValueError("an exploratory model has 2 to 5 factors")
    if n_items <= count:
        raise ValueError(f"{count} factors need more than {count} items")
    loadings = exploratory_loadings(n_items, count)
    return FactorSpec([f"F{k}" for k in range(1, count + 1)], loadings,
                      np.zeros((count, count), bool), str(count))


def _rotate(document, method):
    """Rotate an exploratory bank's slopes by `calibration.rotation.rotate`."""
    from irtcat.calibration.rotation import rotate

    slopes = np.array([item["a"] for item in document["items"]])
    rotated = rotate(slopes, method)
    for item, row in zip(document["items"], np.asarray(rotated.slopes), strict=True):
        item["a"] = [float(v) for v in row]
        item.pop("se", None)                    # the unrotated slopes' errors
    document["dimensions"]["correlation"] = np.asarray(rotated.correlation).tolist()
    document["dimensions"]["rotation"] = method


def structure_key(calibrator):
    return "bifactor" if calibrator.bifactor else "factors"


def _comparison_and_errors(calibrator, responses, client, with_errors):
    """The unidimensional comparison and, `with_errors`, the standard errors (or None) of
    a fit: their E-steps on the Dask `client`'s cluster unless it is None."""
    from irtcat.calibration.mirt_comparison import compare_with_unidimensional
    from irtcat.calibration.mirt_se import standard_errors
    from irtcat.calibration.partitions import DaskPartitions

    if client is None:
        comparison = compare_with_unidimensional(calibrator, responses)
    else:
        partitions = DaskPartitions(client, responses)
        try:
            comparison = compare_with_unidimensional(calibrator, partitions)
        finally:
            partitions.close()
    if not with_errors:
        return comparison, None
    errors = standard_errors(calibrator, responses, cluster=client)
    if not errors["positive_definite"]:
        print("irtcat: warning: the information matrix is not positive definite: "
              "no standard errors", file=sys.stderr)
    return comparison, errors


def run(args):
    from irtcat.api.cluster_option import cluster_for, partition_rows
    from irtcat.calibration.factor_spec import parse_factor_spec
    from irtcat.calibration.mirt_em import MirtCalibrator
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_response_log, write_json

    option = "--bifactor" if args.bifactor else "--factors"
    if args.factors and args.bifactor:
        raise UsageError("give --factors or --bifactor, not both")
    if args.model is None or args.model not in _MODELS:
        raise UsageError(f"{option} needs --model, one of {', '.join(_MODELS)}")
    for option in ("bank", "by_standard", "anchor", "standard", "priors"):
        if getattr(args, option, None):
            name = "--" + option.replace("_", "-")
            raise UsageError(f"{name} is not available with {option}")
    data = read_response_log(args.data, getattr(args, "data_format", None))
    exploratory = bool(args.factors) and args.factors.strip().isdigit()
    if args.rotate and not exploratory:
        raise UsageError("--rotate goes with --factors N (an exploratory model)")
    try:
        if args.bifactor:
            spec = _bifactor_spec(args.bifactor, list(data.item_ids))
        elif exploratory:
            spec = _exploratory_spec(int(args.factors), len(data.item_ids))
        else:
            spec = parse_factor_spec(args.factors, list(data.item_ids))
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None
    responses = _response_set(data)
    if partition_rows(args) is not None:
        responses = dataclasses.replace(responses, partition_rows=int(partition_rows(args)))

    in_place = not args.quiet and sys.stderr.isatty()

    def progress(cycle, loglik, change, seconds):
        if in_place:
            print(f"\rcycle {cycle}: loglik {loglik:.4f}, max change {change:.2e}",
                  end="", file=sys.stderr)

    calibrator = MirtCalibrator(args.model, spec.loadings, spec.free_correlation,
                                max_iter=args.max_iter, tol=args.tol,
                                bifactor=bool(args.bifactor), exploratory=exploratory,
                                progress=progress)
    with cluster_for(args) as client:
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            calibrator.fit(responses, cluster=client)
        if in_place:
            print(file=sys.stderr)
        for warning in caught:
            if issubclass(warning.category, ConvergenceWarning):
                print(f"irtcat: warning: {warning.message}", file=sys.stderr)
        if not args.quiet:
            print(f"{len(data.item_ids)} items, {calibrator.n_persons_} persons, "
                  f"{len(spec.factors)} factors: loglik {calibrator.log_likelihood_:.4f}, "
                  f"{'converged' if calibrator.converged_ else 'NOT converged'} in "
                  f"{calibrator.n_iter_} cycles, {time.perf_counter() - started:.2f} s",
                  file=sys.stderr)
        comparison, errors = _comparison_and_errors(calibrator, responses, client, args.se)
    from irtcat.calibration.mirt_comparison import multidimensional_m2

    document = bank_document(calibrator, list(data.item_ids), spec, args.model, errors)
    document["calibration"]["comparison"] = comparison
    m2 = multidimensional_m2(calibrator, _dense(data), document["items"],
                             document["dimensions"])
    if m2 is not None:
        document["calibration"]["m2"] = m2
    if exploratory:
        document["dimensions"]["structure"] = "exploratory"
        _rotate(document, args.rotate or "oblimin")
    write_json(document, args.out, sys.stdout)
    return 0
