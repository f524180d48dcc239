"""Slow and oversized clients against a real `irtcat serve` (api/server.py), on loopback.

One server with the default settings, on a SQLite database prepared by `irtcat demo
--no-serve`, serves every test of the module. Each test names the finding of the
security probe it repeats:
1. half-open and dripping connections held the worker threads (gthread read a
   request on a thread, with no deadline);
2. errors of the server layer were text/html outside the JSON envelope, and
   responses said ``Server: gunicorn``;
3. the server, which speaks plain HTTP, would listen on any address.
"""

import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from benchmarks.load import Server, free_port, prepare_demo
from irtcat.api.server import Server as WaitressServer

ROOT = pathlib.Path(__file__).resolve().parents[2]

DEADLINE = 2.0                 # seconds any answer may take while slow clients hang on
TEST_ID = "ai-practitioner"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, delivery key) of an `irtcat serve` with its default settings."""
    folder = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{folder / 'irtcat.db'}"
    key = prepare_demo(url, folder)
    with Server(url, folder) as server:
        yield server.port, key


def call(connection, method, path, key=None, body=None):
    """(status, headers, JSON body) of one request on a keep-alive connection, which must
    answer within DEADLINE."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body), "application/json"
    began = time.monotonic()
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    elapsed = time.monotonic() - began
    assert elapsed < DEADLINE, f"{method} {path} took {elapsed:.1f} s"
    return response.status, response.headers, json.loads(payload)


def take_a_test(port, key, learner_id):
    """Start a session with the delivery key and answer it (the first option) until it
    finishes, each step within DEADLINE; returns the number of answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        status, _, session = call(connection, "POST", "/v1/sessions", key,
                                  {"test_id": TEST_ID, "learner_id": learner_id})
        assert status == 201, session
        path, item, answers = f"/v1/sessions/{session['session_id']}/responses", \
            session["item"], 0
        while item is not None:
            status, _, state = call(connection, "POST", path, session["token"],
                                    {"item_id": item["item_id"],
                                     "response": item["options"][0]["id"]})
            assert status == 200, state
            item, answers = state["item"], answers + 1
        assert state["status"] == "finished"
        return answers
    finally:
        connection.close()


def raw(port, data, timeout=10.0):
    """Everything the server sends back to `data` sent on a new connection, until it
    closes (a reset after the response, as when a body is refused midway, ends it too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, data), daemon=True)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        sender.join(timeout)
    return received


def _send_quietly(sock, data):
    chunks = data if isinstance(data, list) else [data]
    try:
        for chunk in chunks:
            sock.sendall(chunk)
    except OSError:                                 # the server refused and closed
        pass


def parse(response):
    """(status, {lower-case header: value}, JSON body) of a raw HTTP response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, json.loads(body)


def assert_envelope(response, status, code):
    got, headers, body = parse(response)
    assert got == status, response[:300]
    assert headers["content-type"] == "application/json"
    assert "server" not in headers
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["details"] == {}


class SlowClients:
    """Connections that never finish their request: `half_open` send a header's start
    and nothing more; `header_drips` and `body_drips` send one more byte of a header, or
    of a declared body, every `period` seconds from a thread of their own."""

    def __init__(self, port, half_open, header_drips, body_drips, period=0.5, tls=None):
        self.period, self.tls, self.sockets, self.dripping = period, tls, [], []
        self.stop = threading.Event()
        for _ in range(half_open):
            self._open(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        for _ in range(header_drips):
            self.dripping.append(self._open(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-S"))
        for _ in range(body_drips):
            self.dripping.append(self._open(
                port, b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 100000\r\n\r\n{"))
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def _open(self, port, start):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock)
        sock.sendall(start)
        self.sockets.append(sock)
        return sock

    def _drip(self):
        while not self.stop.wait(self.period):
            for sock in self.dripping:
                try:
                    sock.send(b"a")
                except OSError:
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_slow_clients_hold_no_thread(served):
    # Finding 1: twelve half-open connections made /v1/health time out, and dripping a
    # header or a body blocked the threads too. Here 60 + 30 + 30 of them hang on while
    # /v1/health and a whole learner session each answer within 2 s.
    port, key = served
    with SlowClients(port, half_open=60, header_drips=30, body_drips=30):
        time.sleep(1.0)                           # every slow connection is in, and drips
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        status, _, health = call(connection, "GET", "/v1/health")
        assert status == 200 and health["status"] == "ok"
        connection.close()
        assert take_a_test(port, key, "slow-clients") >= 12
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        assert call(connection, "GET", "/v1/health")[0] == 200
        connection.close()


@pytest.mark.parametrize("request_bytes, status, code", [
    # Finding 2: a 100 KB Authorization header got 431 text/html.
    (b"GET /v1/tests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"k" * 100_000
     + b"\r\n\r\n", 431, "request_header_fields_too_large"),
    # Finding 2: 200 headers got 431 text/html.
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-Field-%d: v\r\n" % n for n in range(200)) + b"\r\n",
     431, "request_header_fields_too_large"),
    # Finding 2: a 5,000-character URL (a session id) got 400 text/html.
    (b"GET /v1/sessions/" + b"s" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     414, "uri_too_long"),
    # Finding 2: a malformed request line got 400 text/html.
    (b"NOT AN HTTP REQUEST\r\n\r\n", 400, "bad_request"),
], ids=["authorization-100kb", "200-headers", "url-5000", "malformed"])
def test_the_server_refuses_in_the_envelope(served, request_bytes, status, code):
    assert_envelope(raw(served[0], request_bytes), status, code)


def test_a_chunked_body_over_8_mib_is_413(served):
    # Finding 2: a chunked body over 8 MiB got 400 "the body must be JSON", not 413.
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"                  # 64 KiB
    request = [b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nTransfer-Encoding: chunked\r\n\r\n", *[chunk] * 144, b"0\r\n\r\n"]
    assert_envelope(raw(served[0], request), 413, "payload_too_large")


def test_no_response_names_the_server_software(served):
    # Finding 2: responses said "Server: gunicorn".
    connection = http.client.HTTPConnection("127.0.0.1", served[0], timeout=DEADLINE)
    for path in ("/v1/health", "/v1/no-such-route"):
        status, headers, _ = call(connection, "GET", path)
        assert status in (200, 404) and headers.get("Server") is None
    connection.close()


def test_serving_beyond_loopback_needs_behind_proxy(tmp_path):
    # Finding 3: the server speaks plain HTTP but would listen on 0.0.0.0; now it exits
    # with status 2 and one line, before touching a database.
    done = subprocess.run(
        [sys.executable, "-m", "irtcat.api.cli", "serve", "--host", "0.0.0.0", "--port",
         str(free_port())], cwd=tmp_path, capture_output=True, text=True, timeout=20,
        env={"PATH": "/usr/bin:/bin", "IRTCAT_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
             "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "--behind-proxy" in done.stderr
    assert "docs/production.md" in done.stderr
    assert not (tmp_path / "x.db").exists()


def echo(environ, start_response):
    """A WSGI app answering with what the server tells the app about the client."""
    body = json.dumps({"remote_addr": environ["REMOTE_ADDR"],
                       "scheme": environ["wsgi.url_scheme"],
                       "forwarded": environ.get("HTTP_X_FORWARDED_FOR")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("behind_proxy, expected", [
    (False, {"remote_addr": "127.0.0.1", "scheme": "http", "forwarded": None}),
    (True, {"remote_addr": "203.0.113.9", "scheme": "https", "forwarded": "203.0.113.9"}),
])
def test_forwarded_headers_are_trusted_only_behind_a_proxy(behind_proxy, expected):
    # Finding 3 (its remedy): one hop of X-Forwarded-For/-Proto is trusted with
    # --behind-proxy only; without it a client cannot pass for another address.
    listener = socket.create_server(("127.0.0.1", 0))
    server = WaitressServer(echo, [listener], threads=1, behind_proxy=behind_proxy)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            server.poll(0.05)
    loop = threading.Thread(target=serve)
    loop.start()
    try:
        connection = http.client.HTTPConnection(*listener.getsockname()[:2], timeout=5)
        connection.request("GET", "/", headers={"X-Forwarded-For": "203.0.113.9",
                                                 "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        assert json.loads(response.read()) == expected
        connection.close()
    finally:
        stop.set()
        loop.join()
        server.close()


class Nginx:
    """nginx running the configuration of docs/production.md in `folder`, on loopback
    ports, with a throw-away certificate, in front of irtcat on `upstream_port`."""

    def __init__(self, folder, upstream_port):
        self.folder, self.port = folder, free_port()
        document = (ROOT / "docs" / "production.md").read_text()
        block = re.search(r"```nginx\n(.*?)```", document, re.S).group(1)
        for old, new in [("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
                         ("listen 80;", f"listen 127.0.0.1:{free_port()};"),
                         ("listen 443 ssl;", f"listen 127.0.0.1:{self.port} ssl;"),
                         ("/etc/letsencrypt/live/irtcat.example.org", str(folder))]:
            assert old in block, old
            block = block.replace(old, new)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=localhost", "-keyout", folder / "privkey.pem",
                        "-out", folder / "fullchain.pem"], check=True, capture_output=True)
        temp = "\n".join(f"{kind}_temp_path {folder}/{kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""      # its workers read `folder`
        (folder / "nginx.conf").write_text(
            f"{user}pid {folder}/nginx.pid;\nworker_processes 1;\nevents {{}}\n"
            f"http {{\naccess_log off;\n{temp}\n{block}}}\n")
        self.tls = ssl.create_default_context()
        self.tls.check_hostname, self.tls.verify_mode = False, ssl.CERT_NONE
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
             "-e", str(self.folder / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)

    def connection(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=DEADLINE,
                                           context=self.tls)

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stderr.close()


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="nginx and openssl are not installed")
def test_nginx_in_front_as_documented(served, tmp_path):
    # Findings 1-3 in the production set-up of docs/production.md: nginx terminates TLS
    # and holds slow clients (an answer goes through while they hang on), and its own
    # refusals are in the JSON envelope.
    port, key = served
    with Nginx(tmp_path, upstream_port=port) as nginx:
        with SlowClients(nginx.port, half_open=20, header_drips=10, body_drips=10,
                         tls=nginx.tls):
            time.sleep(1.0)
            connection = nginx.connection()
            status, _, health = call(connection, "GET", "/v1/health")
            assert status == 200 and health == {"status": "ok", "database": "reachable"}
            status, _, session = call(connection, "POST", "/v1/sessions", key,
                                      {"test_id": TEST_ID, "learner_id": "via-nginx"})
            assert status == 201, session
            connection.close()
        for method, path, headers, body, status, code in [
                ("GET", "/v1/" + "s" * 9000, {}, None, 414, "uri_too_long"),
                ("GET", "/v1/health", {"X-Big": "b" * 9000}, None, 431,
                 "request_header_fields_too_large"),
                ("POST", "/v1/sessions", {"Content-Type": "application/json"},
                 b" " * (9 * 2**20), 413, "payload_too_large")]:
            connection = nginx.connection()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            envelope = json.loads(response.read())
            connection.close()
            assert (response.status, envelope["error"]["code"]) == (status, code)
            assert response.headers["Content-Type"] == "application/json"
