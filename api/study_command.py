"""`irtcat study`: a simulation study, named CAT designs x simulees, with a summary
table per design; run here or spread over a Dask cluster, with the same results.

The designs file and the seeding are `irtcat.delivery.studies`'s. Each design's entry
in the summary is the simulation report of spec/FORMATS.md
(`api.simulation_report.report`: rmse, bias, conditional, exposure, overlap_rate,
violations, classification, ...) without its "seed" and "seconds" (the study's own),
plus "name", "mean_se" and the "min_length" and "max_length" of the scored tests, and
"sympson_hetter_tuning" when the design was tuned. The summary's "seconds" and
"workers" say how the run went; everything else is the same whatever ran it.

`study_summary` is the whole run (what a queued study could store); `--csv` writes
one row per design of `SUMMARY_COLUMNS`.
"""

from __future__ import annotations

import sys

from irtcat.api.arguments import UsageError, whole_number

MAX_EXAMINEES = 10_000_000
SUMMARY_COLUMNS = ("name", "examinees", "rmse", "bias", "mean_se", "mean_length",
                   "min_length", "max_length", "exposure_max", "exposure_mean",
                   "unused_share", "overlap_rate", "classification_accuracy", "violations",
                   "target_met")
"""The columns of `--csv` (violations: content and length violations added; an empty
cell where a design has no such figure)."""


def add_command(commands):
    """Register `irtcat study` (its arguments are defined when it is used)."""
    commands.add_parser("study", help="a simulation study: named CAT designs x simulees, "
                        "here or on a Dask cluster", define=_define_study)


def _define_study(study):
    from irtcat.delivery.studies import UNIT

    study.add_argument("--bank", required=True, metavar="BANK.json")
    study.add_argument("--designs", required=True, metavar="DESIGNS.json",
                       help='{"base": CAT configuration, "designs": [{"name", "config"}]} '
                            "(docs/simulation.md)")
    study.add_argument("--examinees", type=whole_number(1, MAX_EXAMINEES), default=1000,
                       help="simulees per design, drawn from its prior")
    study.add_argument("--seed", type=whole_number(0), default=1,
                       help="of the random numbers (the same seed, the same study, on any "
                            "cluster)")
    study.add_argument("--unit", type=whole_number(1, MAX_EXAMINEES), default=UNIT,
                       help="simulees per unit of work (part of the study, like the seed)")
    add_scheduler_argument(study)
    study.add_argument("--out", metavar="SUMMARY.json", help="default: standard output")
    study.add_argument("--csv", metavar="SUMMARY.csv", help="also write one row per design")
    study.set_defaults(run=run_study_command)


def add_scheduler_argument(parser):
    """`--scheduler`: where the work runs (calibration.cluster's names)."""
    parser.add_argument("--scheduler", metavar="local|local:N|ADDRESS",
                        help="a Dask cluster: local (2 worker processes), local:N, or a "
                             "scheduler's address (default: $IRTCAT_DASK_SCHEDULER, else "
                             "this process)")


def study_groups(design):
    """The groups whose own estimates a design's report shows: each standard's, when
    the design's content spans several (as `irtcat simulate` reports them)."""
    from irtcat.api.simulation_report import standard_groups

    standards = standard_groups(design)
    return standards if len(standards) > 1 else None


def design_summary(result):
    """The summary entry of one `delivery.studies.DesignResult` (module docstring)."""
    from irtcat.api.simulation_report import report

    out = {"name": result.name}
    figures = report(result.results, result.design, 0.0, true_theta=result.true_theta)
    del figures["seed"], figures["seconds"]
    out.update(figures)
    length = result.joined("scored_length")
    out.update({"mean_se": round(float(result.joined("se").mean()), 4),
                "min_length": int(length.min()), "max_length": int(length.max())})
    if result.tuning is not None:
        out["sympson_hetter_tuning"] = result.tuning
    return out


def study_summary(bank, designs, examinees, seed, client=None, *, unit=None):
    """The summary of a study (module docstring): a dict with "examinees", "seed",
    "unit", "designs" (one entry per design, in order), "workers" and "seconds"."""
    import time

    from irtcat.delivery.studies import UNIT, run_study

    unit = unit or UNIT
    started = time.perf_counter()
    results = run_study(bank, designs, examinees, seed, client, unit=unit, groups=study_groups)
    entries = [design_summary(result) for result in results]
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else 0
    return {"examinees": examinees, "seed": seed, "unit": unit, "designs": entries,
            "workers": workers, "seconds": round(time.perf_counter() - started, 3)}


def summary_rows(summary):
    """The `--csv` rows of a summary: one list of cells per design."""
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    rows = []
    for entry in summary["designs"]:
        exposure = entry["exposure"]
        values = {**entry, "exposure_max": exposure["max"], "exposure_mean": exposure["mean"],
                  "unused_share": exposure["unused_share"],
                  "classification_accuracy": entry.get("classification", {}).get("accuracy"),
                  "violations": entry["violations"]["content"] + entry["violations"]["length"],
                  "target_met": exposure.get("target_met")}
        rows.append([cell(values.get(column)) for column in SUMMARY_COLUMNS])
    return rows


def _write_csv(path, summary):
    import csv

    from irtcat.itembank.io import write_atomically

    def write(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(summary_rows(summary))

    write_atomically(path, write)


def run_study_command(args):
    from irtcat.api import mirt_commands
    from irtcat.api.cluster_option import cluster_for
    from irtcat.api.simulate_command import exposure_warning
    from irtcat.delivery.studies import read_designs
    from irtcat.itembank import DataFormatError, read_bank, read_json, write_json

    if mirt_commands.multidimensional_document(args.bank) is not None:
        raise UsageError(f"{args.bank}: a study runs on a unidimensional bank")
    bank = read_bank(args.bank)
    try:
        designs = read_designs(read_json(args.designs), bank)
    except DataFormatError as error:
        raise UsageError(f"{args.designs}: {error}") from None
    with cluster_for(args) as client:
        summary = study_summary(bank, designs, args.examinees, args.seed, client,
                                unit=args.unit)
    for entry, design in zip(summary["designs"], designs, strict=True):
        warning = exposure_warning(entry["exposure"], entry.get("bands") if
                                   design.design.exposure.method == "item-eligibility" else None)
        if warning:
            print(f"irtcat: warning: design {entry['name']!r}: {warning}", file=sys.stderr)
    if args.csv:
        _write_csv(args.csv, summary)
    write_json(summary, args.out, sys.stdout)
    return 0
