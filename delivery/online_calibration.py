"""Online calibration over the store: a standard's pretest items calibrated from the live
log once they have enough answers, gated, and promoted into a draft bank version.

- Settings (`delivery.online_gates.GateSettings`): a test's configuration may hold an
  ``online_calibration`` object (``min_answers``, ``max_se_a``, ``max_se_b``,
  ``fit_alpha``, ``dif_attributes``, ``slope_range``, ``auto_publish``); a standard
  takes the first one (oldest test first) among the tests that draw from it, and a
  request may override any key.
- Trigger (`queue_ready`): checking after each answer would cost a query per answer, so
  the worker processes check every `CHECK_SECONDS` while idle (`irtcat worker`): per
  standard with pretest items, one aggregate counts their answers
  (`itembank.online.answer_counts`, over the responses' (item_id, id) index); a job is
  queued when an item has reached ``min_answers`` and was not gated before, or has
  doubled its answers since it was held, and no such job waits already. An admin can
  also queue one at any time (``POST /v1/standards/{code}/online-calibration``).
- The run (`run_online_calibration`): a calibration run with source ``online``; the
  published operational items are the anchors; every answer of the standard is read
  with the learners' attributes (`itembank.sessions.attributed_response_log`); the
  gates are `delivery.online_gates.calibrate_and_gate`'s. Promoted items join the
  published version's items in a new draft version, each with its provenance
  (``online``: the run, its answers and every gate's value) stored with its
  parameters; the held ones stay pretest, their reasons in the run's gate table
  (``calibration.online.items``). With ``auto_publish`` the draft is published at once;
  otherwise an admin publishes it (``POST /v1/calibrations/{run}/publish``).
"""

from __future__ import annotations

from irtcat.calibration.cluster import ClusterError
from irtcat.itembank import online as online_rows
from irtcat.itembank.definitions import list_tests
from irtcat.itembank.errors import NotFoundError
from irtcat.itembank.sessions import attributed_response_log

from .errors import ConflictError
from .online_gates import HELD, WAITING, GateSettings, calibrate_and_gate

CONFIG_KEY = "online_calibration"
CHECK_SECONDS = 300.0
JOB_KIND = "online_calibration"


def standard_settings(store, standard, overrides=None):
    """The `GateSettings` of `standard`: the first test drawing from it with an
    ``online_calibration`` section, with `overrides` (a mapping) on top; ValueError for
    an unknown or invalid setting."""
    found = {}
    for test in list_tests(store.database):
        if standard in test["standards"] and CONFIG_KEY in (test["config"] or {}):
            found = dict(test["config"][CONFIG_KEY])
            break
    return GateSettings.from_mapping({**found, **(overrides or {})})


def pretest_items(store, standard):
    """``{item id: model}`` of `standard`'s pretest items not operational in its
    published version."""
    published = store.published_entries(standard)
    return {record.id: record.model for record in store.item_records(standard)
            if record.status == "pretest"
            and published.get(record.id, {}).get("status") != "operational"}


def run_online_calibration(store, standard, overrides=None, *, progress=None, cluster=None):
    """Calibrate and gate `standard`'s ready pretest items; returns the summary
    ``{"run", "status", "version", "published", "settings", "items": gate rows}``.
    `progress` is called after every EM cycle; `cluster`: a Dask client whose workers
    run the E-steps (the estimates of one process), or None: here.

    NotFoundError for an unknown standard; ConflictError when it has no published
    operational item to anchor on or no pretest item; ValueError for bad settings.
    """
    settings = standard_settings(store, standard, overrides)
    models = pretest_items(store, standard)
    published = store.published_entries(standard)
    anchors = {item: {"id": item, **entry} for item, entry in published.items()
               if entry["status"] == "operational"}
    if not anchors:
        raise ConflictError(f"standard {standard!r} has no published operational items to "
                            "calibrate its pretest items against")
    if not models:
        raise ConflictError(f"standard {standard!r} has no pretest items")
    run_id = store.create_calibration_run(standard, None, online_rows.ONLINE,
                                          settings.as_mapping())
    try:
        log, attributes = _log_with_attributes(store, standard, settings.dif_attributes)
        store.start_calibration_run(run_id, len(log.response))
        outcome = calibrate_and_gate(log, models, anchors, list(models), attributes,
                                     settings, progress=progress, cluster=cluster)
    except (ValueError, ConflictError, ClusterError) as error:
        store.fail_calibration_run(run_id, str(error))
        raise
    except Exception as error:
        store.fail_calibration_run(run_id, f"internal error: {type(error).__name__}")
        raise
    population = store.delivery_bank(standard).bank.population
    document = _document(outcome, population, settings)
    version, published_now = None, False
    if outcome.promoted:
        entries = dict(published)
        for row in outcome.promoted:
            entries[row["item"]] = _promoted_entry(row, run_id)
        version = store.complete_calibration_run(run_id, document, entries)
        if settings.auto_publish:
            store.publish(standard, version)
            published_now = True
    else:
        online_rows.complete_without_version(store.database, run_id, document)
    return {"run": run_id, "status": "done", "version": version, "published": published_now,
            "settings": settings.as_mapping(), "items": outcome.rows}


def _log_with_attributes(store, standard, attribute_names):
    """(ResponseLog of the standard, {attribute: values per person})."""
    if not attribute_names:
        return store.response_log(standard), {}
    attributes = {}
    for name in attribute_names:
        log, attributes[name] = attributed_response_log(store.database, standard, name)
    return log, attributes


def _promoted_entry(row, run_id):
    """A promoted item's parameters in the draft version, with its provenance."""
    gates = {name: gate["value"] for name, gate in row["gates"].items()}
    return {**row["parameters"], "status": "operational",
            "online": {"run": run_id, "answers": row["answers"], "gates": gates}}


def _document(outcome, population, settings):
    """The run's result: the promoted items as a bank document on the published scale,
    the gate table and the calibration's own population estimate under
    ``calibration.online``."""
    record = dict((outcome.document or {}).get("calibration") or {})
    record["online"] = {"settings": settings.as_mapping(), "items": outcome.rows,
                        "population_estimate": outcome.population}
    return {"format": "irtcat-bank/1", "metric": "logistic",
            "population": {"mean": population["mean"], "sd": population["sd"]},
            "items": [{"id": row["item"], **row["parameters"]} for row in outcome.promoted],
            "calibration": record}


# --- the trigger ----------------------------------------------------------------------

def due_items(store, standard, settings=None):
    """The pretest items of `standard` an online calibration would gate anew: at least
    ``min_answers`` answers, and never gated, or waiting at the last run that saw them,
    or held there with at most half as many answers as now."""
    settings = settings or standard_settings(store, standard)
    models = pretest_items(store, standard)
    counts = online_rows.answer_counts(store.database, models)
    last = {}
    for run in reversed(online_rows.online_runs(store.database, standard)):
        for row in ((run["result"] or {}).get("calibration") or {}).get(
                "online", {}).get("items", []):
            last[row["item"]] = row
    due = []
    for item, count in counts.items():
        if count < settings.min_answers:
            continue
        previous = last.get(item)
        if previous is None or previous["decision"] == WAITING or (
                previous["decision"] == HELD and count >= 2 * previous["answers"]):
            due.append(item)
    return due


def queue_ready(store, enqueue):
    """Queue an online calibration (`enqueue(standard)`) for every standard with due
    pretest items and none queued or running; returns the standards queued. `enqueue`
    returns None when it found one queued meanwhile (by another worker checking at the
    same time: `enqueue_online_calibration(..., unless_waiting=True)` checks and queues
    in one transaction)."""
    queued = []
    for code in _standards_with_pretest(store):
        if online_rows.waiting_job(store.database, JOB_KIND, code):
            continue
        try:
            if due_items(store, code) and enqueue(code) is not None:
                queued.append(code)
        except (NotFoundError, ValueError):
            continue                 # no published version yet, or a test's bad settings
    return queued


def _standards_with_pretest(store):
    codes = {code for test in list_tests(store.database) for code in test["standards"]}
    return sorted(code for code in codes
                  if any(record.status == "pretest" for record in store.item_records(code)))
