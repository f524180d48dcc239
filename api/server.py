"""The HTTP server under `irtcat serve`: gunicorn's arbiter, waitress in every worker.

gunicorn forks the workers, restarts one that dies or stops beating, and relays
signals; each worker also listens on a socket of its own (`listen_on_own_socket`).
Inside a worker, waitress's I/O loop reads and buffers each request whole, header
and body, before one of the worker's threads takes it: a client that sends half a
request, or drips one a byte at a time, holds a connection but never a thread.

The limits, each answered in the API's JSON error envelope before the app sees
the request (the connection is then closed):

- a request line (method, URL, version) over MAX_REQUEST_LINE bytes: 414;
- a header (request line included) over MAX_HEADER bytes, or more than
  MAX_FIELDS header lines: 431;
- a body over MAX_BODY, by Content-Length or once chunks add up to it: 413;
- a request that does not parse: 400; a transfer coding other than chunked: 501.

A connection idle for IDLE_TIMEOUT seconds is closed, and so is one whose request
is not whole REQUEST_DEADLINE seconds after its first byte. No response names the
server software (no ``Server`` header, no traceback).

Beside the request workers the arbiter keeps `JobWorkers`: ``irtcat worker``
processes that run the queued long admin work (api/worker.py), each restarted when it
dies and stopped with the server.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter as GunicornArbiter
from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import BadRequest, RequestHeaderFieldsTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from .app import MAX_BODY, STATUS_CODES

MAX_REQUEST_LINE = 4096       # bytes; gunicorn's limit was 4094
MAX_HEADER = 64 * 2**10       # bytes, request line included
MAX_FIELDS = 100              # header lines; gunicorn's limit too
IDLE_TIMEOUT = 30             # seconds a connection may stay without a byte either way
REQUEST_DEADLINE = 60         # seconds from a request's first byte to its last
CONNECTION_LIMIT = 1000       # per worker; a connection waiting for bytes costs a socket
SWITCH_INTERVAL = 0.001       # seconds a thread may keep the GIL while another waits for it
ERROR_CODES = {**STATUS_CODES, 414: "uri_too_long", 431: "request_header_fields_too_large",
               501: "not_implemented"}
MESSAGES = {
    400: "the request is malformed",
    413: f"the body is larger than {MAX_BODY // 2**20} MiB",
    414: f"the request line (its URL) is longer than {MAX_REQUEST_LINE} bytes",
    431: f"the request's header is larger than {MAX_HEADER // 2**10} KiB or has more than "
         f"{MAX_FIELDS} lines",
    500: "internal error; the request changed nothing",
    501: "the only transfer coding accepted is chunked",
}


class UriTooLong(BadRequest):
    code = 414
    reason = "URI Too Long"


class _Request(HTTPRequestParser):
    """waitress's parser with the time of the request's first byte, a limit on the
    request line and one on the number of header lines."""

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.time()

    def received(self, data):
        """The number of bytes of `data` that belong to this request."""
        if not self.completed and self.body_rcv is None \
                and len(self.header_plus) <= MAX_REQUEST_LINE:
            head = self.header_plus + data[:MAX_REQUEST_LINE + 1]
            if len(head) > MAX_REQUEST_LINE and b"\n" not in head[:MAX_REQUEST_LINE + 1]:
                self._refuse(UriTooLong(f"longer than {MAX_REQUEST_LINE} bytes"))
                return len(data)
        return super().received(data)

    def parse_header(self, header_plus):
        if header_plus.count(b"\n") > MAX_FIELDS:
            self._refuse(RequestHeaderFieldsTooLarge(f"more than {MAX_FIELDS} lines"))
            return
        super().parse_header(header_plus)

    def _refuse(self, error):
        super().parse_header(b"GET / HTTP/1.0\r\n")     # as waitress does for a 431
        self.error, self.completed = error, True


class _ErrorTask(ErrorTask):
    """waitress's own error responses (a request refused before the app), as the API's
    JSON envelope."""

    def execute(self):
        error = self.request.error
        message = MESSAGES.get(error.code, error.reason)
        if error.code == 400 and error.body:
            message = f"{message}: {error.body}"
        body = json.dumps({"error": {"code": ERROR_CODES.get(error.code, "error"),
                                     "message": message, "details": {}}}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    parser_class = _Request
    error_task_class = _ErrorTask


class _Listener(TcpWSGIServer):
    """One listening socket of a worker; its maintenance also closes connections whose
    request has taken longer than REQUEST_DEADLINE to arrive."""

    channel_class = _Channel

    def maintenance(self, now):
        super().maintenance(now)
        cutoff = now - REQUEST_DEADLINE
        for channel in self.active_channels.values():
            if not channel.requests and channel.request is not None \
                    and channel.request.started < cutoff:
                channel.will_close = True


class Server:
    """waitress on listening TCP sockets, driven by the caller: `poll` serves for a
    moment, `stop_accepting` and `busy` let it finish what it holds, `close` ends it."""

    def __init__(self, app, sockets, *, threads, behind_proxy=False,
                 connection_limit=CONNECTION_LIMIT):
        self.adj = Adjustments(
            sockets=sockets, threads=threads, connection_limit=connection_limit,
            max_request_header_size=MAX_HEADER, max_request_body_size=MAX_BODY + 1,
            channel_timeout=IDLE_TIMEOUT, cleanup_interval=1, ident="",
            expose_tracebacks=False, clear_untrusted_proxy_headers=not behind_proxy,
            log_socket_errors=False, asyncore_use_poll=True)
        self.map = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(threads)
        app = wrap(app, behind_proxy)
        self.listeners = [
            _Listener(app, self.map, True, sock, dispatcher=self.dispatcher, adj=self.adj,
                      bind_socket=False,
                      sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))
            for sock in sockets]

    def poll(self, timeout):
        """Serve until something happens on a socket, or for `timeout` seconds."""
        wasyncore.loop(timeout=timeout, map=self.map, use_poll=True, count=1)

    def stop_accepting(self):
        for listener in self.listeners:
            listener.accepting = False
            wasyncore.dispatcher.close(listener)       # its trigger stays, for the tasks

    def busy(self):
        """True while a request is queued or running, or a response is still to be sent."""
        return any(channel.requests or channel.total_outbufs_len
                   for listener in self.listeners
                   for channel in list(listener.active_channels.values()))

    def close(self):
        self.dispatcher.shutdown(timeout=1)
        wasyncore.close_all(self.map)


def wrap(app, behind_proxy):
    """The WSGI app to serve: `app`, trusting one proxy's X-Forwarded-For and
    X-Forwarded-Proto when `behind_proxy` (and never otherwise)."""
    return ProxyFix(app, x_for=1, x_proto=1, x_host=0, x_port=0, x_prefix=0) \
        if behind_proxy else app


class WaitressWorker(Worker):
    """A gunicorn worker serving its sockets with waitress (the module docstring). Its
    I/O loop beats the heartbeat, so a wedged loop gets the worker restarted; it stops
    when the arbiter asks (SIGTERM, finishing what it holds within graceful_timeout) or
    goes away."""

    def run(self):
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)    # a line per queued request
        # A request changes threads more often than under gthread (the I/O loop reads it,
        # a task thread answers it), and each hand-over back from a system call waits for
        # the running thread's interval: 5 ms by default. At 1 ms the p99 answer under
        # the load benchmark's think time fell from 205-235 ms to 30-175 ms on a busy
        # 2-core machine (benchmarks/RESULTS.md).
        sys.setswitchinterval(SWITCH_INTERVAL)
        sockets = [getattr(listener, "sock", listener) for listener in self.sockets]
        server = Server(self.wsgi, sockets, threads=self.cfg.threads,
                        behind_proxy=getattr(self.app, "behind_proxy", False),
                        connection_limit=_open_files(CONNECTION_LIMIT + 100) - 100)
        try:
            beat = 0.0
            while self.alive:
                if time.monotonic() >= beat:
                    self.notify()
                    beat = time.monotonic() + 1.0
                    if os.getppid() != self.ppid:
                        self.log.info("Parent changed, shutting down: %s", self)
                        break
                server.poll(1.0)
            server.stop_accepting()
            deadline = time.monotonic() + self.cfg.graceful_timeout
            while server.busy() and time.monotonic() < deadline:
                self.notify()
                server.poll(0.1)
        finally:
            server.close()


def _open_files(wanted):
    """The limit of open files of this process, raised towards `wanted` if lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def listen_on_own_socket(server, worker):
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


def _child_exit(server, worker):
    """gunicorn's child_exit hook: the ended worker's Prometheus files are merged away."""
    from .observability import worker_exit

    worker_exit(worker.pid)


# A job worker's numerical libraries run one thread each (unless the operator set their
# own): a calibration or report then takes one core at most, and the request workers keep
# the others for the learners (with a BLAS thread per core, one job worker's matrix
# products spread over every core, nice 19 or not; benchmarks/RESULTS.md, load).
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS")}


class JobWorkers:
    """`count` ``irtcat worker`` processes on `database_url` (api/worker.py), started as
    fresh interpreters (nothing of the arbiter's state is inherited), each with one
    thread of numerical work (`ONE_THREAD`)."""

    def __init__(self, count, database_url):
        self.count = count
        self.command = [sys.executable, "-m", "irtcat.api.worker", "--database-url",
                        database_url]
        self.environment = {**ONE_THREAD, **os.environ}
        self.processes, self.stopped = [], False

    def keep(self, log):
        """Start the missing workers: at first, and in place of any that died."""
        if self.stopped:
            return
        for process in [p for p in self.processes if p.poll() is not None]:
            log.error("job worker (pid:%s) ended; starting another", process.pid)
            self.processes.remove(process)
        while len(self.processes) < self.count:
            self.processes.append(subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                                   env=self.environment))

    def stop(self, timeout):
        """SIGTERM to each (a job in progress goes back to the queue), SIGKILL to any
        still running after `timeout` seconds."""
        self.stopped = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


class _JobArbiter(GunicornArbiter):
    """gunicorn's arbiter, which also keeps the application's `JobWorkers`."""

    def manage_workers(self):
        super().manage_workers()
        self.app.job_workers.keep(self.log)

    def stop(self, graceful=True):
        job_workers = self.app.job_workers
        for process in job_workers.processes if not job_workers.stopped else ():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)     # they stop while gunicorn's do
        super().stop(graceful)
        job_workers.stop(self.cfg.graceful_timeout if graceful else 2)


class Arbiter(BaseApplication):
    """gunicorn's arbiter over WaitressWorker processes, each loading the app from
    `load_app()` (the app is not loaded before the fork), and `job_workers` worker
    processes on `database_url` beside them."""

    def __init__(self, load_app, *, host, port, workers, threads, behind_proxy=False,
                 job_workers=0, database_url=None):
        self.load_app, self.behind_proxy = load_app, behind_proxy
        self.job_workers = JobWorkers(job_workers, database_url)
        self.options = {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                        "worker_class": f"{__name__}.WaitressWorker", "timeout": 120,
                        "graceful_timeout": 10, "accesslog": None, "errorlog": "-",
                        "loglevel": "warning", "reuse_port": True,
                        "post_fork": listen_on_own_socket, "child_exit": _child_exit}
        super().__init__()

    def load_config(self):
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        return self.load_app()

    def run(self):
        try:
            _JobArbiter(self).run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.exit(1)
