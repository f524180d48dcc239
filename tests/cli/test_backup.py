"""`irtcat db backup` and `irtcat db restore`, and the modes of the database's files.

The main test takes a backup of a real `irtcat serve` (gunicorn, 2 workers) while
learners answer, restores it into a fresh file and checks that every answer the
server acknowledged before the backup began is in it (the answers come from the
load itself; the server commits an answer before it replies). The others check the
bad-input contract of store_commands.py (exit 2, one line, nothing written) and the
PostgreSQL answer (pg_dump / pg_restore).
"""

import http.client
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from irtcat.api.cli import main
from irtcat.delivery.sessions import Delivery
from irtcat.itembank.database import Database, current_revision, head_revision, upgrade
from irtcat.itembank.store import Store

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:              # the benchmarks are not installed
    sys.path.insert(0, str(ROOT))
from benchmarks.common import irtcat_command  # noqa: E402
from benchmarks.load import Server, prepare_demo  # noqa: E402

LEARNERS = 4
BEFORE_BACKUP = 30           # answers acknowledged before the backup starts


@pytest.fixture
def umask_022():
    before = os.umask(0o022)             # the usual umask: files would come out 0644
    yield
    os.umask(before)


def modes(folder):
    return {path.name: oct(path.stat().st_mode & 0o777) for path in folder.iterdir()}


def test_a_new_sqlite_database_and_its_files_are_private(tmp_path, umask_022):
    database = Database(f"sqlite:///{tmp_path / 'irtcat.db'}")
    try:
        upgrade(database)
        with database.writing():
            pass                             # takes the writer lock: makes irtcat.db-lock
        with database.reading():
            assert modes(tmp_path) == {name: "0o600" for name in (
                "irtcat.db", "irtcat.db-wal", "irtcat.db-shm", "irtcat.db-lock")}
    finally:
        database.dispose()


def test_an_existing_database_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    Database(f"sqlite:///{path}").dispose()
    assert modes(tmp_path) == {"shared.db": "0o640"}


# --- a backup under load -----------------------------------------------------------

def call(connection, method, path, key, body):
    """(status, JSON body) of one request on a keep-alive connection."""
    connection.request(method, path, json.dumps(body),
                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    return response.status, json.loads(payload) if payload else None


def learner(number, port, key, stop, acknowledged, errors):
    """Sessions of the credential test one after another until `stop`; appends
    (session id, item id) to `acknowledged` for each answer the server accepted."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        while not stop.is_set():
            status, session = call(connection, "POST", "/v1/sessions", key,
                                   {"test_id": "ai-practitioner",
                                    "learner_id": f"backup-{number}"})
            if status != 201:
                errors.append(f"start: {status} {session}")
                return
            item = session["item"]
            while item is not None and not stop.is_set():
                status, state = call(connection, "POST",
                                     f"/v1/sessions/{session['session_id']}/responses",
                                     session["token"],
                                     {"item_id": item["item_id"],
                                      "response": item["options"][0]["id"]})
                if status == 429:                     # rate limited: answer again later
                    time.sleep(0.2)
                    continue
                if not 200 <= status < 300:
                    errors.append(f"answer: {status} {state}")
                    return
                acknowledged.append((session["session_id"], item["item_id"]))
                item = state["item"]
    except OSError as error:
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def irtcat_process(url, *argv):
    return subprocess.run([*irtcat_command(), *argv], env={**os.environ,
                          "IRTCAT_DATABASE_URL": url}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.mark.runs_long
def test_a_backup_taken_under_load_holds_every_acknowledged_answer(tmp_path, umask_022):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    key = prepare_demo(url, str(tmp_path))
    backup = tmp_path / "backups" / "irtcat-backup.db"
    backup.parent.mkdir()
    acknowledged, errors, stop = [], [], threading.Event()
    with Server(url, str(tmp_path), workers=2, threads=2) as server:
        threads = [threading.Thread(target=learner, args=(n, server.port, key, stop,
                                                          acknowledged, errors))
                   for n in range(LEARNERS)]
        for thread in threads:
            thread.start()
        try:
            assert wait_for(lambda: len(acknowledged) >= BEFORE_BACKUP or errors, 20), \
                server.log()
            before = list(acknowledged)        # committed before the backup begins
            made = irtcat_process(url, "db", "backup", backup)
            during = len(acknowledged) - len(before)
            assert wait_for(lambda: len(acknowledged) > len(before) + during, 5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    assert errors == [], errors
    assert made.returncode == 0, made.stderr
    assert made.stderr.count("\n") == 1 and str(backup) in made.stderr
    assert during > 0                          # the learners answered while it copied
    assert len(before) >= BEFORE_BACKUP
    assert modes(backup.parent) == {"irtcat-backup.db": "0o600"}   # no partial file left

    fresh = f"sqlite:///{tmp_path / 'restored.db'}"
    restored = irtcat_process(fresh, "db", "restore", backup)
    assert restored.returncode == 0, restored.stderr
    assert restored.stderr.count("\n") == 1
    with sqlite3.connect(tmp_path / "restored.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        answers = set(connection.execute("SELECT session_id, item_id FROM responses"))
    assert set(before) <= answers
    assert len(answers) >= len(before)
    live, database = Database(url), Database(fresh)
    try:
        assert current_revision(database) == head_revision()
        tests = {test["id"] for test in Delivery(Store(database)).tests()}
        assert tests == {test["id"] for test in Delivery(Store(live)).tests()}
        assert "ai-practitioner" in tests
    finally:
        live.dispose()
        database.dispose()


# --- the contract: exit 2, one line, nothing half-written ---------------------------

def test_backup_and_restore_round_trip_or_point_to_pg_dump(irtcat, database_url, tmp_path):
    path = tmp_path / "copy.db"
    assert irtcat("db", "upgrade")[0] == 0
    status, out, err = irtcat("db", "backup", path)
    if database_url.startswith("postgresql"):
        assert status == 2 and out == "" and err.count("\n") == 1
        assert "pg_dump --format=custom" in err and "pg_restore" in err
        status, _, err = irtcat("db", "restore", path)
        assert status == 2 and err.count("\n") == 1 and "pg_dump" in err
        assert not path.exists()
        return
    assert status == 0 and out == "" and err.count("\n") == 1
    assert "schema " + head_revision() in err
    status, out, err = irtcat("db", "restore", path)
    assert status == 0 and out == "" and err.count("\n") == 1


def sqlite_url(path):
    return f"sqlite:///{path}"


def test_backup_refuses_to_replace_a_file_unless_forced(tmp_path, monkeypatch, capsys):
    live, path = tmp_path / "live.db", tmp_path / "copy.db"
    monkeypatch.setenv("IRTCAT_DATABASE_URL", sqlite_url(live))
    assert main(["db", "upgrade"]) == 0
    path.write_bytes(b"an older backup")
    capsys.readouterr()
    assert main(["db", "backup", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"irtcat: error: {path} exists; give --force to replace it\n"
    assert path.read_bytes() == b"an older backup"
    assert main(["db", "backup", "--force", str(path)]) == 0
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() \
            == [(head_revision(),)]
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


@pytest.mark.parametrize("argv, message", [
    (["db", "backup", "{tmp}/none/copy.db"], "no folder {tmp}/none for the backup"),
    (["db", "backup", "--force", "{tmp}/folder"], "cannot write {tmp}/folder: Is a directory"),
    (["db", "restore", "{tmp}/missing.db"], "no backup file {tmp}/missing.db"),
    (["db", "restore", "{tmp}/junk.db"],
     "{tmp}/junk.db is not an irtcat database (file is not a database)"),
    (["db", "restore", "{tmp}/other.db"],
     "{tmp}/other.db is not an irtcat database (no such table: alembic_version)"),
    (["db", "restore", "{tmp}/future.db"],
     "{tmp}/future.db is at schema 9999, which this release does not know"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys,
                                                            argv, message):
    live = tmp_path / "live.db"
    monkeypatch.setenv("IRTCAT_DATABASE_URL", sqlite_url(live))
    assert main(["db", "upgrade"]) == 0
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    (tmp_path / "folder").mkdir()
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with sqlite3.connect(tmp_path / "future.db") as connection:
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('9999')")
    capsys.readouterr()
    before = live.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    status = main([arg.format(tmp=tmp_path) for arg in argv])
    out, err = capsys.readouterr()
    assert (status, out, err) == (2, "", f"irtcat: error: {message.format(tmp=tmp_path)}\n")
    assert live.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_backup_of_a_missing_or_empty_database_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IRTCAT_DATABASE_URL", sqlite_url(tmp_path / "typo.db"))
    assert main(["db", "backup", str(tmp_path / "copy.db")]) == 2
    assert capsys.readouterr().err == \
        f"irtcat: error: no SQLite database at {tmp_path / 'typo.db'}\n"
    (tmp_path / "empty.db").touch()
    monkeypatch.setenv("IRTCAT_DATABASE_URL", sqlite_url(tmp_path / "empty.db"))
    assert main(["db", "backup", str(tmp_path / "copy.db")]) == 2
    assert capsys.readouterr().err == \
        f"irtcat: error: {tmp_path / 'empty.db'} is empty: nothing to back up\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
