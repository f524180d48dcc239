"""`irtcat serve` and `irtcat keys`: the API under gunicorn, and its keys.

`serve` migrates the database, then runs the app under gunicorn (several
worker processes, each with a few threads); any worker serves any session,
since a session's state is in the database. ``--debug`` runs Flask's
development server instead, for local work only.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from contextlib import contextmanager

from gunicorn.app.base import BaseApplication
from sqlalchemy.exc import SQLAlchemyError

from itembank.database import Database, DatabaseError, upgrade
from itembank.delivery import create_key, list_keys, revoke_key
from itembank.io import DataFormatError
from itembank.store import NotFoundError

from .store_commands import first_line


def add_commands(commands):
    serve = commands.add_parser("serve", help="serve the v1 API (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=min(8, (os.cpu_count() or 1) + 1),
                       help="worker processes (default: cores + 1, at most 8; the fastest "
                            "setting measured, benchmarks/RESULTS.md)")
    serve.add_argument("--threads", type=int, default=2,
                       help="threads per worker (default 2: one answers while the other "
                            "waits on the disk)")
    serve.add_argument("--debug", action="store_true",
                       help="Flask's development server, one process (not for real use)")
    serve.set_defaults(run=run_serve)

    keys = commands.add_parser("keys", help="API keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION",
                                  parser_class=type(keys))
    actions.required = True
    create = actions.add_parser("create", help="a new key, printed once (only a hash is kept)")
    create.add_argument("--role", choices=("admin", "delivery"), required=True)
    create.add_argument("--name", default="", help="who the key is for")
    create.set_defaults(run=run_keys_create)
    listing = actions.add_parser("list", help="the keys (prefixes, roles, whether revoked)")
    listing.set_defaults(run=run_keys_list)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", metavar="KEY", help="the key, or its first 12 characters")
    revoke.set_defaults(run=run_keys_revoke)


def _listen_on_own_socket(server, worker):
    """gunicorn's post_fork hook: the worker also listens on a TCP socket of its own,
    bound to the same address with SO_REUSEPORT, so the kernel spreads new connections
    evenly over the workers. Workers sharing one socket leave it to whichever wakes
    first, and a keep-alive connection then stays on that worker: most of a class of
    learners who start at once would share one worker (and one core). The shared socket
    stays open too, and every worker accepts from it."""
    own = []
    for listener in worker.sockets:
        family = listener.sock.family
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue                                   # a unix socket: shared only
        mine = socket.socket(family, socket.SOCK_STREAM)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        mine.bind(listener.getsockname())
        mine.listen(server.cfg.backlog)
        own.append(mine)
    worker.sockets = own + list(worker.sockets)


class _Gunicorn(BaseApplication):
    def __init__(self, options, database_url):
        self.options, self.database_url = options, database_url
        super().__init__()

    def load_config(self):
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        from .app import create_app

        app = create_app(self.database_url, migrate=False)
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
    database = Database()
    try:
        upgrade(database)
        yield database
    except SQLAlchemyError as error:
        raise DatabaseError(f"cannot use the database: {first_line(error)}") from None
    finally:
        database.dispose()


def run_serve(args):
    with migrated_database() as database:
        url = database.url
    if args.debug:
        from .app import create_app

        create_app(url, migrate=False).run(host=args.host, port=args.port, debug=True)
        return 0
    _check_port_free(args.host, args.port)
    print(f"irtcat: serving the API at http://{args.host}:{args.port}/v1 and the learner "
          f"page at http://{args.host}:{args.port}/ with {args.workers} workers",
          file=sys.stderr)
    _Gunicorn({"bind": f"{args.host}:{args.port}", "workers": args.workers,
               "threads": args.threads, "worker_class": "gthread", "timeout": 120,
               "graceful_timeout": 10, "accesslog": None, "errorlog": "-",
               "loglevel": "warning", "reuse_port": True,
               "post_fork": _listen_on_own_socket}, url).run()
    return 0


def _check_port_free(host, port):
    """DataFormatError if something listens on host:port already. The workers bind with
    SO_REUSEPORT, which would let a second server share the port (and its traffic)
    silently; a plain bind refuses while any socket holds it."""
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
    with migrated_database() as database:
        print(create_key(database, args.role, args.name))
    return 0


def run_keys_list(args):
    with migrated_database() as database:
        for key in list_keys(database):
            state = "revoked" if key["revoked"] else "active"
            print(f"{key['prefix']}...  {key['role']:8}  {state:7}  {key['created_at'][:19]}  "
                  f"{key['name']}")
    return 0


def run_keys_revoke(args):
    with migrated_database() as database:
        count = revoke_key(database, args.key)
    if count == 0:
        raise NotFoundError("no active key matches")
    print(f"{count} key revoked", file=sys.stderr)
    return 0
