"""`irtcat lti platform add|list|remove`: the LTI 1.3 platforms registered with this
tool, in the store of ``IRTCAT_DATABASE_URL`` (the admin API's /v1/lti/platforms does
the same). The store, the JOSE library and SQLAlchemy are imported when a command runs.
"""

from __future__ import annotations

import json
import sys


def add_command(commands):
    """Register `irtcat lti` on the `irtcat` subparsers."""
    commands.add_parser("lti", help="LTI 1.3: the platforms (LMSs) that launch tests",
                        define=_define_lti)


def _define_lti(lti):
    kinds = lti.add_subparsers(dest="lti_command", metavar="WHAT", parser_class=type(lti))
    kinds.required = True
    platform = kinds.add_parser("platform", help="registered platforms")
    actions = platform.add_subparsers(dest="platform_command", metavar="ACTION",
                                      parser_class=type(lti))
    actions.required = True
    add = actions.add_parser("add", help="register a platform (prints it as JSON)")
    add.add_argument("--issuer", required=True, help="the platform's issuer (iss)")
    add.add_argument("--client-id", required=True, help="the client id it gave this tool")
    add.add_argument("--deployment-id", required=True, action="append", metavar="ID",
                     dest="deployment_ids", help="a deployment it launches from (repeat)")
    add.add_argument("--auth-login-url", required=True, metavar="URL",
                     help="its OIDC authorization endpoint")
    add.add_argument("--token-url", required=True, metavar="URL",
                     help="its OAuth 2 token endpoint")
    add.add_argument("--jwks-url", required=True, metavar="URL", help="its public keys")
    add.set_defaults(run=run_add)
    listing = actions.add_parser("list", help="the registered platforms as JSON")
    listing.set_defaults(run=run_list)
    remove = actions.add_parser("remove", help="remove a platform with its launches")
    remove.add_argument("id", type=int, metavar="ID", help="its id (see list)")
    remove.set_defaults(run=run_remove)


def _print(document):
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def run_add(args):
    from irtcat.delivery.lti import check_platform
    from irtcat.itembank import lti as rows

    from .store_commands import open_store

    platform = check_platform({name: getattr(args, name) for name in rows.PLATFORM_FIELDS})
    with open_store() as store:
        _print(rows.add_platform(store.database, platform))
    return 0


def run_list(args):
    from irtcat.itembank import lti as rows

    from .store_commands import open_store

    with open_store() as store:
        _print(rows.platforms(store.database))
    return 0


def run_remove(args):
    from irtcat.itembank import lti as rows

    from .store_commands import open_store

    with open_store() as store:
        rows.remove_platform(store.database, args.id)
    print(f"platform {args.id} removed", file=sys.stderr)
    return 0
