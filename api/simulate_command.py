"""`irtcat simulate`: adaptive tests simulated on a bank, and their report.

A design the bank cannot honour (content minimums over `max_items`, an exposure
target under the lowest rate the bank allows, `min_items` over the operational
items, ...) is refused before anything runs: exit 2 with its reason on one line
(`engine.validation.check_design`, which the API's test definitions go through
too). A run that did not meet its exposure target says so on standard error, and
the report counts every test that broke a rule of the design ("violations").

Files: `--persons` one row per examinee (spec/FORMATS.md's columns, then
`decision` and `responses`), `--log` the long response log of every answer
(operational and pretest) that `irtcat calibrate` reads, `--report` an HTML page.
"""

from __future__ import annotations

import sys

from irtcat.api.arguments import UsageError, whole_number

MAX_EXAMINEES = 10_000_000
FILE_OPTIONS = (
    ("--out", "REPORT.json", "default: standard output"),
    ("--theta", "THETAS.csv", "true abilities person_id,theta (default: drawn from the prior)"),
    ("--responses", "MATRIX.csv", "replay these answers (wide CSV, every item of the bank)"),
    ("--persons", "PERSONS.csv", "write person_id,true_theta,theta,se,length,items,decision,"
                                 "responses (length: scored items)"),
    ("--log", "LOG.csv", "write every answer as a long response log person_id,item_id,"
                         "response (pretest answers too)"),
    ("--save-design", "CAT.json", "write the configuration with tuned Sympson-Hetter "
                                  "parameters"),
    ("--report", "REPORT.html", "also write an HTML report with plots (self-contained)"),
)
"""(option, metavar, help) of the files `irtcat simulate` reads and writes."""


def add_command(commands):
    """Register `irtcat simulate` (its arguments are defined when it is used)."""
    commands.add_parser("simulate", help="simulate adaptive tests on a bank",
                        define=_define_simulate)


def _define_simulate(simulate):
    simulate.add_argument("--bank", required=True, metavar="BANK.json")
    simulate.add_argument("--config", required=True, metavar="CAT.json",
                          help="the CAT configuration (spec/FORMATS.md)")
    simulate.add_argument("--examinees", type=whole_number(1, MAX_EXAMINEES), default=1000,
                          help="examinees drawn from the prior")
    simulate.add_argument("--seed", type=whole_number(0), default=1,
                          help="of the random numbers (the same seed, the same run)")
    for flag, metavar, text in FILE_OPTIONS:
        simulate.add_argument(flag, metavar=metavar, help=text)
    simulate.set_defaults(run=run_simulate)


def _true_thetas(path):
    from irtcat.itembank import read_table_columns

    table = read_table_columns(path, ["person_id", "theta"])
    return list(table["person_id"]), table["theta"].to_numpy(float)


def _replayed_answers(path, bank):
    """(answers (n, n_items) int in the bank's order, person ids) of a wide CSV."""
    import numpy as np

    from irtcat.itembank import align_responses, read_responses

    data = read_responses(path)
    missing = sorted(set(bank.item_ids) - set(data.item_ids))
    if missing:
        raise UsageError(f"{path}: no column for bank item {missing[0]!r}: a "
                         "replay needs every item's answer")
    responses, _, _ = align_responses(data, bank)
    column = {item: j for j, item in enumerate(data.item_ids)}
    replay = responses[:, [column[item] for item in bank.item_ids]]
    if np.isnan(replay).any():
        row, col = np.argwhere(np.isnan(replay))[0]
        raise UsageError(f"{path}: person {data.person_ids[row]} has no answer to "
                         f"{bank.item_ids[col]!r}")
    return replay.astype(np.intp), data.person_ids


def _examinees(args, bank, design, rng):
    """(true_theta or None, replayed answers or None, person ids) of the run."""
    import numpy as np

    true_theta, replay, person_ids = None, None, None
    if args.responses:
        replay, person_ids = _replayed_answers(args.responses, bank)
    if args.theta:
        theta_ids, true_theta = _true_thetas(args.theta)
        if len(set(theta_ids)) != len(theta_ids):
            raise UsageError(f"{args.theta}: a person_id appears twice")
        if replay is not None:
            lookup = dict(zip(theta_ids, true_theta, strict=True))
            unmatched = [person for person in person_ids if person not in lookup]
            if unmatched or len(theta_ids) != len(person_ids):
                raise UsageError("--theta and --responses must hold the same persons"
                                 + (f": no theta for {unmatched[0]!r}" if unmatched else ""))
            true_theta = np.array([lookup[person] for person in person_ids])
        person_ids = person_ids or theta_ids
    if true_theta is None and replay is None:
        true_theta = rng.normal(design.scoring.prior_mean, design.scoring.prior_sd,
                                args.examinees)
    if (replay.shape[0] if replay is not None else true_theta.size) == 0:
        raise UsageError("no examinees to simulate: the --theta or --responses file has no rows")
    if person_ids is None:
        person_ids = [f"sim{i + 1}" for i in range(true_theta.size)]
    return true_theta, replay, person_ids


def _tuned(args, bank, config, design, rng):
    """(design with tuned Sympson-Hetter parameters, the report's tuning block)."""
    import dataclasses
    import json
    import time

    from irtcat.engine.simulate import tune_sympson_hetter, tuning_reached
    from irtcat.itembank import write_json

    started = time.perf_counter()
    parameters, history = tune_sympson_hetter(bank.params, design, rng)
    design = dataclasses.replace(design, exposure=dataclasses.replace(
        design.exposure, sympson_hetter=parameters))
    tuning = {"rounds": len(history), "max_exposure_by_round": history,
              "target_met": tuning_reached(design, history),
              "seconds": round(time.perf_counter() - started, 3)}
    if history.unreachable:
        tuning["unreachable"] = history.unreachable
    if args.save_design:
        saved = json.loads(json.dumps(config))
        saved.setdefault("exposure", {})["parameters"] = {
            item: round(float(k), 6) for item, k in zip(bank.item_ids, parameters,
                                                        strict=True) if k < 1}
        write_json(saved, args.save_design)
    return design, tuning


def exposure_warning(exposure, bands=None):
    """The warning line of a report's exposure block whose target was not met, or None;
    with `bands` (the report's, under item eligibility) the target was each band's."""
    if exposure.get("target_met", True):
        return None
    highest = exposure["max"] if bands is None else max(band["max_rate"] for band in bands)
    line = (f"the exposure target {exposure['target']:g} was not met: the highest "
            f"operational exposure {'in a θ band ' if bands else ''}is {highest:g}")
    if exposure["lowest_possible_max"] > exposure["target"]:
        line += (f", and the mean length over the operational items puts it at "
                 f"{exposure['lowest_possible_max']:g} at least")
    return line


def run_simulate(args):
    import os

    import numpy as np

    from irtcat.api import mirt_commands
    from irtcat.api.report import simulation_details, simulation_report_html
    from irtcat.api.simulation_report import report as simulation_report
    from irtcat.api.simulation_report import timed_run
    from irtcat.delivery.cat_config import design_from_config
    from irtcat.itembank import (
        DataFormatError,
        read_bank,
        read_json,
        write_json,
        write_persons,
        write_simulated_log,
    )
    from irtcat.itembank.io import write_atomically

    document = mirt_commands.multidimensional_document(args.bank)
    if document is not None:
        return mirt_commands.run_simulate(args, document)
    bank = read_bank(args.bank)
    config = read_json(args.config)
    try:
        design = design_from_config(config, bank)
    except DataFormatError as error:
        raise UsageError(f"{args.config}: {error}") from None
    rng = np.random.default_rng(args.seed)
    true_theta, replay, person_ids = _examinees(args, bank, design, rng)
    tuning = None
    if design.exposure.method == "sympson-hetter" and design.exposure.sympson_hetter is None:
        design, tuning = _tuned(args, bank, config, design, rng)
    batches, seconds = timed_run(bank.params, design, rng, true_theta=true_theta,
                                 responses=replay)
    result = simulation_report(batches, design, seconds, true_theta=true_theta, seed=args.seed)
    if tuning:
        result["sympson_hetter_tuning"] = tuning
    warning = exposure_warning(result["exposure"], result.get("bands")
                               if design.exposure.method == "item-eligibility" else None)
    if tuning and tuning.get("unreachable"):
        stopped = f"the Sympson-Hetter tuning stopped: {tuning['unreachable']}"
        warning = f"{warning}; {stopped}" if warning else stopped
    if warning:
        print(f"irtcat: warning: {warning}", file=sys.stderr)
    if args.persons:
        write_persons(args.persons, person_ids, true_theta, batches, bank.item_ids,
                      classified=design.stopping.classification is not None)
    if args.log:
        write_simulated_log(args.log, person_ids, batches, bank.item_ids)
    if args.report:
        details = simulation_details(batches, design, bank.item_ids, true_theta=true_theta)
        title = (f"CAT simulation: {os.path.basename(args.bank)} with "
                 f"{os.path.basename(args.config)}")
        page = simulation_report_html(result, details, title=title)
        write_atomically(args.report, lambda handle: handle.write(page))
    write_json(result, args.out, sys.stdout)
    return 0
