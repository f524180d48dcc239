"""`irtcat roles import FILE` and `irtcat roles list`: the career framework's job roles
(an `irtcat-roles/1` document, docs/careers.md) in the store of IRTCAT_DATABASE_URL.

Importing replaces the stored roles by the file's: the file is the whole framework."""

from __future__ import annotations

import sys


def add_command(commands):
    """Register `irtcat roles` (its arguments are defined when it is used)."""
    commands.add_parser("roles", help="the career framework's job roles",
                        define=_define_roles)


def _define_roles(roles):
    actions = roles.add_subparsers(dest="roles_command", metavar="ACTION",
                                   parser_class=type(roles))
    actions.required = True
    replace = actions.add_parser("import", help="replace the job roles by a file's")
    replace.add_argument("framework", metavar="ROLES.json", help="an irtcat-roles/1 document")
    replace.set_defaults(run=run_roles_import)
    listing = actions.add_parser("list", help="the job roles as an irtcat-roles/1 document")
    listing.set_defaults(run=run_roles_list)


def run_roles_import(args):
    from irtcat.delivery.sessions import Delivery
    from irtcat.itembank import read_json

    from .store_commands import open_store

    with open_store() as store:
        summary = Delivery(store).careers.replace_roles(read_json(args.framework))
    print(", ".join(f"{len(ids)} {name}" for name, ids in summary.items()) + " job roles",
          file=sys.stderr)
    return 0


def run_roles_list(args):
    from irtcat.delivery.careers import ROLES_FORMAT
    from irtcat.itembank import write_json
    from irtcat.itembank.careers import job_roles

    from .store_commands import open_store

    with open_store() as store:
        roles = job_roles(store.database)
    write_json({"format": ROLES_FORMAT, "roles": roles}, None, sys.stdout)
    return 0
