"""Calibration runs as a workflow over the store: response log → calibration → draft
version.

`calibrate_standard` reads a standard's stored response log (or uploaded
responses), calibrates its items by MML-EM and stores the result as an
unpublished bank version, with the run's inputs, options and fit recorded. A
psychometrician inspects the draft (`irtcat bank export --version N`) and
publishes it (`irtcat bank publish`); versions already published never change.

Models: each item keeps the model it was imported with, unless `model` is given,
which replaces the model of every item of its kind (a dichotomous model for the
dichotomous items, a polytomous one for the polytomous items).

With ``anchored=True`` the operational items of the published version keep their
parameters (fixed-parameter calibration) and the others, typically pretest items,
are calibrated onto that scale; the draft then also carries the anchors and any
published item that had no new responses.

Every function takes the `Store` itself (`irtcat.itembank.store.Store`): the run's
rows, the item records, the response log and the draft version are its methods.
"""

from __future__ import annotations

import warnings

from irtcat.calibration.cluster import ClusterError
from irtcat.calibration.mml_em import M_STEPS, Priors
from irtcat.calibration.workflow import CalibrationInputError, calibrate_document
from irtcat.engine import DICHOTOMOUS_MODELS, MODELS, ConvergenceWarning
from irtcat.itembank.io import ResponseData, ResponseLog
from irtcat.itembank.store import Store

SOURCES = ("log", "upload")


def _item_models(records, model):
    if model is None:
        return {record.id: record.model for record in records}
    if model not in MODELS:
        raise CalibrationInputError(f"unknown model {model!r}; expected one of "
                                    f"{', '.join(MODELS)}")
    dichotomous = model in DICHOTOMOUS_MODELS
    return {record.id: model if (record.model in DICHOTOMOUS_MODELS) == dichotomous
            else record.model for record in records}


def _options(model, anchored, priors, standard_errors, n_nodes, max_iter, tol, m_step):
    return {"model": model, "anchored": anchored,
            "priors": None if priors is None else {
                name: list(value) for name, value in vars(priors).items() if value is not None},
            "standard_errors": standard_errors, "quadpts": n_nodes, "max_iter": max_iter,
            "tol": tol, "m_step": m_step}


def _checked(store):
    if not isinstance(store, Store):
        raise TypeError(f"store must be an irtcat.itembank.store.Store, got "
                        f"{type(store).__name__}")
    return store


def _response_count(data):
    """The number of responses in `data` (a `ResponseLog`, or a `ResponseData` matrix
    whose missing cells are NaN)."""
    if isinstance(data, ResponseLog):
        return len(data.response)
    if isinstance(data, ResponseData):
        return int((data.responses == data.responses).sum())
    raise TypeError(f"data must be a ResponseLog or ResponseData, got {type(data).__name__}")


def start_calibration(store: Store, standard, model=None, *, source="log", anchored=False,
                      priors=None, standard_errors=True, n_nodes=61, max_iter=500, tol=1e-4,
                      m_step="mirt"):
    """Validate the request and record a queued run; returns the run id."""
    if source not in SOURCES:
        raise CalibrationInputError(f"source must be one of {', '.join(SOURCES)}")
    if m_step not in M_STEPS:
        raise CalibrationInputError(f"m_step must be one of {', '.join(M_STEPS)}")
    if priors is not None and not isinstance(priors, Priors):
        raise TypeError("priors must be a calibration.Priors")
    _item_models(_checked(store).item_records(standard), model)   # an unknown model fails here
    return store.create_calibration_run(
        standard, model, source,
        _options(model, anchored, priors, standard_errors, n_nodes, max_iter, tol, m_step))


def execute_calibration(store: Store, run_id, data=None, progress=None, cluster=None):
    """Run a recorded calibration; returns `store.calibration_run(run_id)`.

    `data`: a `ResponseData` or `ResponseLog` for an upload; None reads the stored
    log. `progress(cycle, loglik, largest change, seconds)` after every EM cycle.
    `cluster`: a `distributed.Client` whose workers run the E-steps (the estimates of
    one process), or None: here. A failure is recorded on the run (status ``failed``
    and its message) and raised again.
    """
    run = _checked(store).calibration_run(run_id)
    options, code = run["options"], run["standard"]
    try:
        records = store.item_records(code)
        if data is None:
            data = store.response_log(code)
        n_responses = _response_count(data)
        if n_responses == 0:
            raise CalibrationInputError(f"standard {code!r} has no responses to calibrate")
        store.start_calibration_run(run_id, n_responses)
        models = _item_models(records, options["model"])
        known = {record.id for record in records}
        unknown = [item for item in data.item_ids if item not in known]
        if unknown:
            raise CalibrationInputError(f"item {unknown[0]!r} of the data is not an item of "
                                        f"standard {code!r}")
        published = store.published_entries(code)
        anchors = {}
        if options["anchored"]:
            anchors = {item_id: {"id": item_id, **parameters}
                       for item_id, parameters in published.items()
                       if parameters["status"] == "operational"}
            if not anchors:
                raise CalibrationInputError(f"standard {code!r} has no published operational "
                                            "items to anchor on")
        priors = None if not options["priors"] else Priors(
            **{name: tuple(value) for name, value in options["priors"].items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # recorded as converged: false
            document, _ = calibrate_document(
                data, models, anchors=anchors, standards={i: code for i in known},
                priors=priors, standard_errors=options["standard_errors"],
                n_nodes=options["quadpts"], max_iter=options["max_iter"], tol=options["tol"],
                m_step=options.get("m_step", "mirt"),
                progress=progress, cluster=cluster)
    except (CalibrationInputError, ValueError, ClusterError) as error:
        store.fail_calibration_run(run_id, str(error))
        raise
    except Exception as error:
        store.fail_calibration_run(run_id, f"internal error: {type(error).__name__}")
        raise
    status = {record.id: record.status for record in records}
    entries = {}
    for item in document["items"]:
        item["status"] = status[item["id"]]
        entries[item["id"]] = {name: value for name, value in item.items()
                               if name not in ("id", "standard")}
    if options["anchored"]:
        for item_id, parameters in published.items():
            entries.setdefault(item_id, parameters)
    store.complete_calibration_run(run_id, document, entries)
    return store.calibration_run(run_id)


def calibrate_standard(store: Store, standard, model=None, *, data=None, progress=None, **options):
    """`start_calibration` then `execute_calibration`, for the command line and tests."""
    run_id = start_calibration(store, standard, model,
                               source="log" if data is None else "upload", **options)
    return execute_calibration(store, run_id, data, progress)
