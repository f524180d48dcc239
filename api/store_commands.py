"""`irtcat` commands on the store: db, standards, bank and responses.

The database is ``IRTCAT_DATABASE_URL`` (default: ``irtcat.db`` in the working
directory). An empty database gets its schema on first use; one made by an
older release is migrated with `irtcat db upgrade`.

Each command imports the store (SQLAlchemy) and the engine when it runs, so the
other commands start without them.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager


def add_commands(commands):
    """Register the store's commands on the `irtcat` subparsers (their arguments are
    defined when the command is used)."""
    commands.add_parser("db", help="the store's database schema", define=_define_db)
    commands.add_parser("standards", help="the skill framework", define=_define_standards)
    commands.add_parser("bank", help="items and bank versions", define=_define_bank)
    commands.add_parser("responses", help="the response log", define=_define_responses)


def _define_db(db):
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION",
                                    parser_class=type(db))
    db_commands.required = True
    upgrade_ = db_commands.add_parser("upgrade", help="migrate the schema to this release")
    upgrade_.set_defaults(run=run_db_upgrade)
    backup = db_commands.add_parser(
        "backup", help="copy the SQLite database, while it serves, to a new file")
    backup.add_argument("path", metavar="PATH", help="the backup file to write (mode 0600)")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup.set_defaults(run=run_db_backup)
    restore = db_commands.add_parser(
        "restore", help="replace the SQLite database by a backup (stop the server first)")
    restore.add_argument("path", metavar="PATH", help="a file written by irtcat db backup")
    restore.set_defaults(run=run_db_restore)


def _define_standards(standards):
    actions = standards.add_subparsers(dest="standards_command", metavar="ACTION",
                                       parser_class=type(standards))
    actions.required = True
    framework = actions.add_parser("import", help="create or update standards")
    framework.add_argument("framework", metavar="FRAMEWORK.json",
                           help="an irtcat-framework/1 document")
    framework.set_defaults(run=run_standards_import)
    listing = actions.add_parser("list", help="the standards as an irtcat-framework/1 document")
    listing.set_defaults(run=run_standards_list)
    _define_case_commands(actions)


def _define_case_commands(actions):
    """`standards import-case PACKAGE.json` and `standards export-case` (docs/case.md)."""
    package = actions.add_parser(
        "import-case", help="create or update standards from a CASE 1.0 package")
    package.set_defaults(run=run_standards_import_case)
    package.add_argument("package", metavar="PACKAGE.json", help="a CASE CFPackage")
    export = actions.add_parser("export-case", help="the standards as a CASE 1.0 package")
    export.set_defaults(run=run_standards_export_case)
    export.add_argument("--out", metavar="PACKAGE.json", help="default: standard output")
    export.add_argument("--base-url", metavar="URL",
                        help="where the server is reached, the start of the package's URIs "
                             "(default: IRTCAT_PUBLIC_URL, else http://localhost:8000)")


def _define_bank(bank):
    from irtcat.api.arguments import model_name
    from irtcat.calibration.mml_em import M_STEPS
    from irtcat.engine import MODELS

    actions = bank.add_subparsers(dest="bank_command", metavar="ACTION",
                                  parser_class=type(bank))
    actions.required = True
    imports = actions.add_parser(
        "import", help="add or update items (with content and keys; parameters optional)")
    imports.add_argument("bank", metavar="BANK.json", help="an irtcat-bank/1 document")
    imports.set_defaults(run=run_bank_import)
    export = actions.add_parser("export", help="an irtcat-bank/1 document of the store")
    export.add_argument("--standard", metavar="CODE", help="that standard's items only")
    export.add_argument("--version", type=_version_number, metavar="N",
                        help="that bank version's items (needs --standard); default: every "
                             "item, with the published version's parameters where it has them")
    export.add_argument("--published", action="store_true",
                        help="the published versions' items only: the bank sessions deliver, "
                             "ready for simulate")
    export.add_argument("--out", metavar="BANK.json", help="default: standard output")
    export.set_defaults(run=run_bank_export)
    versions = actions.add_parser("versions", help="a standard's bank versions")
    versions.add_argument("--standard", metavar="CODE", required=True)
    versions.set_defaults(run=run_bank_versions)
    publish = actions.add_parser(
        "publish", help="make a version the one new sessions use (an earlier one: roll back)")
    publish.add_argument("--standard", metavar="CODE", required=True)
    publish.add_argument("--version", type=_version_number, metavar="N",
                         help="default: the newest version")
    publish.set_defaults(run=run_bank_publish)
    calibrate = actions.add_parser(
        "calibrate", help="calibrate a standard from its response log into a draft version")
    calibrate.add_argument("--standard", metavar="CODE", required=True)
    calibrate.add_argument("--model", type=model_name, choices=MODELS,
                           help="replaces the model of the items of its kind, any case, mirt's "
                                "names too (default: each item's own)")
    calibrate.add_argument("--data", metavar="DATA.csv",
                           help="calibrate these responses instead of the stored log")
    calibrate.add_argument("--anchored", action="store_true",
                           help="keep the published operational items' parameters; calibrate "
                                "the others onto their scale")
    calibrate.add_argument("--priors", action="store_true",
                           help="Bayes-modal M-step with the default priors")
    calibrate.add_argument("--no-se", action="store_true", help="skip the standard errors")
    calibrate.add_argument("--m-step", choices=M_STEPS, default="mirt",
                           help="mirt: R mirt's EM path (default); newton: exact M-steps")
    calibrate.set_defaults(run=run_bank_calibrate)


def _define_responses(responses):
    actions = responses.add_subparsers(dest="responses_command", metavar="ACTION",
                                       parser_class=type(responses))
    actions.required = True
    imports = actions.add_parser(
        "import", help="append responses (wide or long CSV), e.g. historical data")
    imports.add_argument("data", metavar="DATA.csv")
    imports.add_argument("--source", default="import", metavar="NAME",
                         help="prefix of the session ids made for its persons (default: import)")
    imports.set_defaults(run=run_responses_import)
    export = actions.add_parser("export", help="the log as long CSV (or Parquet), ready for "
                                "calibrate")
    export.add_argument("--standard", metavar="CODE")
    export.add_argument("--format", dest="data_format", choices=("csv", "parquet"),
                        type=str.lower, default="csv",
                        help="long CSV (default) or one Parquet file (needs --out)")
    export.add_argument("--out", metavar="LOG.csv", help="default: standard output")
    export.set_defaults(run=run_responses_export)


def _version_number(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a version number is 1, 2, ...; got {text!r}")
    return int(text)


@contextmanager
def open_store():
    """The store of ``IRTCAT_DATABASE_URL``, closed afterwards; an empty database is given
    the schema, one at an older schema is refused until `irtcat db upgrade`."""
    from irtcat.itembank.database import (
        Database,
        DatabaseError,
        current_revision,
        head_revision,
        upgrade,
    )
    from irtcat.itembank.errors import StorageFailure
    from irtcat.itembank.store import Store

    database = Database()
    try:
        try:
            revision = current_revision(database)
            if revision is None:
                upgrade(database)
            elif revision != head_revision():
                raise DatabaseError(f"the database is at schema {revision}, this release "
                                    f"needs {head_revision()}: run `irtcat db upgrade`")
        except StorageFailure as error:
            raise DatabaseError(f"cannot use the database: {first_line(error)}") from None
        yield Store(database)
    finally:
        database.dispose()


def counted(count, noun):
    """"1 item", "2 items": `count` and `noun`, plural unless the count is one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def first_line(error):
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_db_upgrade(args):
    from irtcat.itembank.database import Database, DatabaseError, current_revision, upgrade
    from irtcat.itembank.errors import StorageFailure

    database = Database()
    try:
        before = current_revision(database)
        upgrade(database)
        after = current_revision(database)
    except StorageFailure as error:
        raise DatabaseError(f"cannot migrate the database: {first_line(error)}") from None
    finally:
        database.dispose()
    print(f"schema {before or 'empty'} -> {after}" if before != after
          else f"schema {after}: up to date", file=sys.stderr)
    return 0


def run_db_backup(args):
    from irtcat.itembank.database import DatabaseError, backup_sqlite
    from irtcat.itembank.errors import StorageFailure

    database = _existing_database()
    try:
        copy = backup_sqlite(database, args.path, force=args.force)
    except StorageFailure as error:
        raise DatabaseError(f"cannot back up the database: {first_line(error)}") from None
    finally:
        database.dispose()
    print(f"backup of {database.file} (schema {copy['revision']}, "
          f"{copy['bytes'] / 2**20:.1f} MiB) written to {copy['path']}", file=sys.stderr)
    return 0


def run_db_restore(args):
    from irtcat.itembank.database import Database, DatabaseError, head_revision, restore_sqlite
    from irtcat.itembank.errors import StorageFailure

    database = Database()
    try:
        restored = restore_sqlite(database, args.path)
    except StorageFailure as error:
        raise DatabaseError(f"cannot restore the database: {first_line(error)}") from None
    finally:
        database.dispose()
    behind = "" if restored["revision"] == head_revision() else \
        "; run `irtcat db upgrade` to bring it to this release's schema"
    print(f"{database.file} restored from {args.path} (schema {restored['revision']})"
          f"{behind}", file=sys.stderr)
    return 0


def _existing_database():
    """The database of IRTCAT_DATABASE_URL, refused when it is a SQLite file that does
    not exist (opening it would create an empty one)."""
    from irtcat.itembank.database import Database, DatabaseError, sqlite_file

    file = sqlite_file()
    if file is not None and not file.exists():
        raise DatabaseError(f"no SQLite database at {file}")
    return Database()


def run_standards_import(args):
    from irtcat.itembank import read_json

    with open_store() as store:
        summary = store.import_framework(read_json(args.framework))
    print(", ".join(f"{len(codes)} {name}" for name, codes in summary.items()) + " standards",
          file=sys.stderr)
    return 0


def run_standards_list(args):
    from irtcat.itembank import write_json

    with open_store() as store:
        standards = store.standards()
    write_json({"format": "irtcat-framework/1", "standards": standards}, None, sys.stdout)
    return 0


def run_standards_import_case(args):
    from irtcat.delivery.case import import_case_package
    from irtcat.itembank import read_json

    with open_store() as store:
        summary = import_case_package(store, read_json(args.package))
    print(f"CFDocument {summary.pop('document')}: "
          + ", ".join(f"{len(codes)} {name}" for name, codes in summary.items())
          + " standards", file=sys.stderr)
    return 0


def run_standards_export_case(args):
    import os

    from irtcat.delivery.case import case_package
    from irtcat.itembank import write_json

    base_url = args.base_url or os.environ.get("IRTCAT_PUBLIC_URL") or "http://localhost:8000"
    with open_store() as store:
        package = case_package(store, base_url)
    write_json(package, args.out, sys.stdout)
    return 0


def run_bank_import(args):
    from irtcat.itembank import read_json

    with open_store() as store:
        summary = store.import_items(read_json(args.bank))
    published = "; ".join(f"{v['standard']} version {v['version']} published"
                          for v in summary["versions"]) or "no new bank version"
    print(f"{counted(summary['created'], 'item')} created, {summary['updated']} updated, "
          f"{summary['unchanged']} unchanged; {published}", file=sys.stderr)
    return 0


def run_bank_export(args):
    from irtcat.itembank import write_json

    with open_store() as store:
        document = store.export_bank(args.standard, args.version, args.published)
    write_json(document, args.out, sys.stdout)
    return 0


def run_bank_versions(args):
    with open_store() as store:
        rows = store.versions(args.standard)
    print(f"{'version':>7}  {'items':>5}  {'published':9}  {'current':7}  "
          f"{'created (UTC)':19}  run")
    for row in rows:
        print(f"{row['version']:7d}  {row['items']:5d}  {'yes' if row['published'] else 'draft':9}"
              f"  {'*' if row['current'] else '':7}  {row['created_at'][:19]:19}  "
              f"{row['calibration_run'] or '-'}")
    return 0


def run_bank_publish(args):
    with open_store() as store:
        info = store.publish(args.standard, args.version)
    print(f"{info['standard']}: version {info['version']} is published and current",
          file=sys.stderr)
    return 0


def run_bank_calibrate(args):
    import warnings

    from irtcat.calibration.mml_em import Priors
    from irtcat.delivery.calibration_runs import calibrate_standard
    from irtcat.engine import ConvergenceWarning
    from irtcat.itembank import read_response_log

    data = read_response_log(args.data) if args.data else None
    with open_store() as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run = calibrate_standard(store, args.standard, args.model, data=data,
                                 anchored=args.anchored,
                                 priors=Priors.defaults() if args.priors else None,
                                 standard_errors=not args.no_se, m_step=args.m_step)
    record = run["result"]["calibration"]
    print(f"{args.standard}: draft version {run['version']} from "
          f"{counted(run['n_responses'], 'response')} "
          f"of {counted(record['n_persons'], 'session')}: "
          f"{counted(len(run['result']['items']), 'item')}, loglik {record['loglik']:.4f}, "
          f"{'converged' if record['converged'] else 'NOT converged'} in "
          f"{counted(record['iterations'], 'cycle')}", file=sys.stderr)
    print(f"inspect: irtcat bank export --standard {args.standard} --version {run['version']}",
          file=sys.stderr)
    print(f"publish: irtcat bank publish --standard {args.standard} --version {run['version']}",
          file=sys.stderr)
    return 0


def run_responses_import(args):
    from irtcat.itembank import read_response_log

    log = _as_log(read_response_log(args.data))
    with open_store() as store:
        count = store.import_response_log(log, args.source)
    print(f"{counted(count, 'response')} of {counted(len(log.person_ids), 'person')} added "
          "to the log",
          file=sys.stderr)
    return 0


def _as_log(data):
    """A `ResponseLog` of wide or long data."""
    import numpy as np

    from irtcat.itembank import ResponseLog

    if isinstance(data, ResponseLog):
        return data
    person_index, item_index = np.nonzero(~np.isnan(data.responses))
    return ResponseLog(data.person_ids, data.item_ids, person_index, item_index,
                       data.responses[person_index, item_index])


def run_responses_export(args):
    from irtcat.itembank.errors import DataFormatError
    from irtcat.itembank.io import write_atomically

    if args.data_format == "parquet" and args.out is None:
        raise DataFormatError("--format parquet writes a file: give --out LOG.parquet")
    with open_store() as store:
        if args.data_format == "parquet":
            store.write_responses_parquet(args.out, args.standard)
        elif args.out is None:
            store.write_responses(sys.stdout, args.standard)
        else:
            write_atomically(args.out,
                             lambda handle: store.write_responses(handle, args.standard))
    return 0

