"""`irtcat serve` and `irtcat keys`: the API under gunicorn and waitress, and its keys.

`serve` migrates the database, then runs the app under gunicorn's arbiter with
several worker processes, each serving with waitress on a few threads
(api/server.py: a slow or stalled client holds no thread); any worker serves any
session, since a session's state is in the database. The server speaks plain
HTTP: on an address other than loopback it must sit behind a TLS proxy
(``--behind-proxy``, docs/production.md). ``--debug`` runs Flask's development
server instead, for local work only.

Beside gunicorn, `serve` keeps ``--job-workers`` worker processes (api/worker.py) that
run the queued calibrations, simulations, reports and exports: at most that many run
at once on this host (0: only workers started elsewhere run them).
"""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
import sys
from contextlib import contextmanager, nullcontext

from .store_commands import first_line

# The key roles of irtcat.itembank.schema.KEY_ROLES, written out: the command line starts
# without importing the store (tests/api/test_auth.py checks the two agree).
KEY_ROLES = ("admin", "delivery", "cat-client", "employer")

MAX_WORKERS = 64
"""Most worker processes, and threads per worker."""


def add_commands(commands):
    """Register `serve` and `keys` (their arguments are defined when the command is used)."""
    commands.add_parser("serve", help="serve the v1 API (gunicorn and waitress)",
                        define=_define_serve)
    commands.add_parser("keys", help="API keys", define=_define_keys)


def _define_serve(serve):
    from .arguments import whole_number

    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; any other than "
                            "loopback needs --behind-proxy)")
    serve.add_argument("--port", type=whole_number(1, 65535), default=8000,
                       help="TCP port to listen on")
    serve.add_argument("--workers", type=whole_number(1, MAX_WORKERS),
                       default=min(8, (os.cpu_count() or 1) + 1),
                       help="worker processes (here cores + 1, at most 8: the fastest "
                            "setting measured, benchmarks/RESULTS.md)")
    serve.add_argument("--threads", type=whole_number(1, MAX_WORKERS), default=2,
                       help="threads per worker (default 2: one answers while the other "
                            "waits on the disk)")
    serve.add_argument("--job-workers", type=whole_number(0, MAX_WORKERS), default=1, metavar="N",
                       help="worker processes for calibrations, simulations, reports and "
                            "exports, the most that run at once (default 1; 0: none here, "
                            "irtcat worker runs them elsewhere)")
    serve.add_argument("--behind-proxy", action="store_true",
                       help="a proxy terminating TLS forwards to this server: allows a "
                            "non-loopback --host, and trusts one hop of X-Forwarded-For "
                            "and X-Forwarded-Proto (docs/production.md)")
    serve.add_argument("--debug", action="store_true",
                       help="Flask's development server, one process (not for real use)")
    serve.set_defaults(run=run_serve)


def _define_keys(keys):
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION",
                                  parser_class=type(keys))
    actions.required = True
    create = actions.add_parser("create", help="a new key, printed once (only a hash is kept)")
    create.add_argument("--role", choices=KEY_ROLES, required=True)
    create.add_argument("--name", default="", help="who the key is for")
    create.set_defaults(run=run_keys_create)
    listing = actions.add_parser("list", help="the keys (prefixes, roles, whether revoked)")
    listing.set_defaults(run=run_keys_list)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", metavar="KEY", help="the key, or its first 12 characters")
    revoke.set_defaults(run=run_keys_revoke)


def _load_app(url):
    """The Flask app on `url`, made in a worker once it has forked."""
    from .app import create_app

    app = create_app({"DATABASE_URL": url})
    # Everything loaded so far (numpy, scipy, SQLAlchemy, Flask: some 170,000 objects)
    # lives as long as the worker: out of the collector's sight, a full collection
    # scans what requests made since, in milliseconds instead of 140 to 340 ms
    # (measured under load, benchmarks/RESULTS.md).
    gc.collect()
    gc.freeze()
    return app


@contextmanager
def migrated_database():
    """The database of IRTCAT_DATABASE_URL, migrated to this release, closed afterwards."""
    from irtcat.itembank.database import Database, DatabaseError, upgrade
    from irtcat.itembank.errors import StorageFailure

    database = Database()
    try:
        upgrade(database)
        yield database
    except StorageFailure as error:
        raise DatabaseError(f"cannot use the database: {first_line(error)}") from None
    finally:
        database.dispose()


def run_serve(args):
    behind_proxy = getattr(args, "behind_proxy", False)
    _check_host(args.host, behind_proxy)
    with migrated_database() as database:
        url = database.url
    from .observability import configure_logging, prepare_multiprocess_dir

    job_workers = getattr(args, "job_workers", 1)
    if args.debug:
        from .app import create_app
        from .worker import background_worker

        configure_logging()
        # the reloader's child serves (WERKZEUG_RUN_MAIN): it runs the jobs on a thread
        serving = os.environ.get("WERKZEUG_RUN_MAIN") == "true"
        with background_worker(url) if serving else nullcontext():
            create_app({"DATABASE_URL": url}).run(host=args.host, port=args.port, debug=True)
        return 0
    from .server import Arbiter

    _check_port_free(args.host, args.port)
    print(f"irtcat: serving the API at http://{args.host}:{args.port}/v1 and the learner "
          f"page at http://{args.host}:{args.port}/ with {args.workers} workers",
          file=sys.stderr)
    configure_logging()                   # JSON lines from here on, in every process
    prepare_multiprocess_dir()            # before the fork: every worker writes its metrics
    Arbiter(lambda: _load_app(url), host=args.host, port=args.port, workers=args.workers,
            threads=args.threads, behind_proxy=behind_proxy, job_workers=job_workers,
            database_url=url).run()
    return 0


def _check_host(host, behind_proxy):
    """DataFormatError if `host` is not a loopback address and no proxy is declared: the
    server speaks plain HTTP, so keys and answers would cross the network in clear."""
    from irtcat.itembank.errors import DataFormatError

    if behind_proxy:
        return
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise DataFormatError(f"cannot serve on {host}: {error.strerror}") from None
    if not all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos):
        raise DataFormatError(f"{host} is not a loopback address and the server speaks plain "
                              f"HTTP: serve behind a TLS proxy with --behind-proxy "
                              f"(docs/production.md)")


def _check_port_free(host, port):
    """DataFormatError if something listens on host:port already. The workers bind with
    SO_REUSEPORT, which would let a second server share the port (and its traffic)
    silently; a plain bind refuses while any socket holds it."""
    from irtcat.itembank.errors import DataFormatError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise DataFormatError(f"cannot serve on {host}: {error.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise DataFormatError(f"cannot serve on {host}:{port}: {error.strerror}") from None


def run_keys_create(args):
    from irtcat.delivery.keys import create_key

    with migrated_database() as database:
        print(create_key(database, args.role, args.name))
    return 0


def run_keys_list(args):
    from irtcat.delivery.keys import list_keys

    with migrated_database() as database:
        keys = list_keys(database)
    print(f"{'key':15}  {'role':8}  {'state':7}  {'created (UTC)':19}  name")
    for key in keys:
        state = "revoked" if key["revoked"] else "active"
        print(f"{key['prefix'] + '...':15}  {key['role']:8}  {state:7}  "
              f"{key['created_at'][:19]:19}  {key['name']}")
    return 0


def run_keys_revoke(args):
    from irtcat.delivery.keys import revoke_key
    from irtcat.itembank.errors import NotFoundError

    with migrated_database() as database:
        count = revoke_key(database, args.key)
    if count == 0:
        raise NotFoundError("no active key matches")
    print(f"{count} key{'' if count == 1 else 's'} revoked", file=sys.stderr)
    return 0
