"""The README's tour, run verbatim in a temporary folder.

The convention (stated in the README's Quick start): every fenced block whose info string
is `console` belongs to the tour. In it, a line starting with `$ ` is a command (a line
ending in a backslash continues on the next one), and the lines up to the next command are
the output the README shows for it. The commands run in the README's order, each in its own
`bash`, sharing the shell variables earlier commands set (`K=...`, `export ...`), in a
temporary folder holding a copy of `examples/`, links to the repository's `api/`, `tests/`
and `.venv/`, and a fresh database (`IRTCAT_DATABASE_URL` in that folder).

What is asserted for each command:
- its exit status: 2 where the README shows a usage error (a line `irtcat: error: ...`),
  0 otherwise;
- its output (standard output and error, interleaved as on a terminal): every shown line,
  in the shown order, is a line of the real output. Lines the README does not show may come
  between them (progress, warnings), so output the README does not quote can change freely.
  A shown line `...` stands for lines left out, and `...` inside a line for text left out.
  The parts that differ on every run are masked on both sides before comparing: API keys
  (`irtk_...`), session tokens (`irts_...`), session ids (`s_` and 20 hex digits), ISO
  times, durations (`0.12 s`, `"seconds": 0.006`) and the server's worker count (cores + 1).
- a command whose line ends with the comment `# varies` answers with JSON lines in which
  the item the engine drew at random shows: there the values under `item_id`, `stem`,
  `options` (three or four of them, by item) and `message` are not compared; everything
  else of each JSON line is.

Commands that serve until stopped: `make run` is run as `.venv/bin/irtcat demo --port P`
(the install step of `make run` is this suite's own environment; P is a free port, put in
place of the README's 8000 in every command and shown line). The test reads its output until
it serves, compares it like any command's, keeps it serving for the commands after it (the
LMS walk-through), and stops it at the end.

Set IRTCAT_README_RECORD=FILE to write every command's real output to FILE as JSON (to
regenerate the README's shown outputs); the outputs are then not compared, exit statuses
still are.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_PORT = "8000"
COMMAND_TIMEOUT = 900
SERVE_TIMEOUT = 900

MASKS = [
    (re.compile(r"irtk_[A-Za-z0-9_-]+"), "irtk_<key>"),
    (re.compile(r"irts_[A-Za-z0-9_-]+"), "irts_<token>"),
    (re.compile(r"\bs_[0-9a-f]{20}\b"), "s_<session>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "<duration> s"),
    (re.compile(r'"seconds": [0-9.eE+-]+'), '"seconds": <duration>'),
    (re.compile(r"with \d+ workers"), "with <n> workers"),
]
VARYING_KEYS = {"item_id", "stem", "options", "message"}
VARIES_MARK = re.compile(r"#\s*varies\s*$")


@dataclass
class Step:
    """One command of the tour and the output lines the README shows for it."""

    command: str
    line: int
    shown: list = field(default_factory=list)

    @property
    def varies(self):
        return bool(VARIES_MARK.search(self.command))

    @property
    def expected_status(self):
        return 2 if any(line.startswith("irtcat: error:") for line in self.shown) else 0


def tour_steps(text):
    """The commands of the README's `console` blocks, in order, with their shown output."""
    steps, in_console, continuing = [], False, False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            in_console = not in_console and line.strip() == "```console"
            continuing = False
            continue
        if not in_console:
            continue
        if continuing:
            steps[-1].command += "\n" + line
        elif line.startswith("$ "):
            steps.append(Step(command=line[2:], line=number))
        elif steps and line.strip():
            steps[-1].shown.append(line)
        continuing = (line.startswith("$ ") or continuing) and line.endswith("\\")
    return steps


def mask(line):
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def line_pattern(shown):
    """A shown line as a regular expression: masked, with `...` matching any text."""
    return re.compile(".*".join(re.escape(part) for part in mask(shown).split("...")))


def without_varying(value):
    """A JSON value with the values under VARYING_KEYS replaced by one placeholder."""
    if isinstance(value, dict):
        return {key: "<varies>" if key in VARYING_KEYS else without_varying(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [without_varying(item) for item in value]
    return value


def json_or_none(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def unmatched_lines(step, output, port):
    """The shown lines of `step` missing, in order, from `output` (empty: all found)."""
    actual = [mask(line) for line in output.splitlines()]
    position, missing = 0, []
    for shown in step.shown:
        shown = shown.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
        if shown.strip() == "...":
            continue
        expected_json = json_or_none(mask(shown)) if step.varies else None
        for index in range(position, len(actual)):
            if expected_json is not None:
                found = json_or_none(actual[index])
                matched = found is not None and (
                    without_varying(found) == without_varying(expected_json))
            else:
                matched = line_pattern(shown).fullmatch(actual[index]) is not None
            if matched:
                position = index + 1
                break
        else:
            missing.append(shown)
    return missing


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`irtcat demo` serving in the background: its output collected line by line."""

    def __init__(self, folder, env, port):
        self.lines = []
        self.process = subprocess.Popen(
            [".venv/bin/irtcat", "demo", "--port", str(port)], cwd=folder, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = port

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_serving(self):
        """Wait until the server answers /v1/health; returns its output so far."""
        deadline = time.monotonic() + SERVE_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/v1/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.reader.join(5)
                raise AssertionError("make run ended before serving:\n" + "".join(self.lines))
            if any("irtcat: serving" in line for line in self.lines):
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        if answer.status == 200:
                            return "".join(self.lines)
                except OSError:
                    pass
            time.sleep(0.5)
        raise AssertionError("make run did not serve in time:\n" + "".join(self.lines))

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self.reader.join(30)
        self.process.stdout.close()


def prepare_folder(folder):
    venv = pathlib.Path(sys.prefix)
    if not (venv / "bin" / "irtcat").exists():
        pytest.skip(f"no irtcat script in {venv}/bin: run from the repository's .venv")
    missing = [tool for tool in ("bash", "curl", "awk", "sed", "python3")
               if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the README's tour needs {', '.join(missing)}")
    (folder / ".venv").symlink_to(venv, target_is_directory=True)
    for name in ("api", "tests"):
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    shutil.copytree(REPO / "examples", folder / "examples")


def run_command(step, folder, env, state, port):
    """Run one command in bash with the variables earlier commands set; (status, output)."""
    command = step.command.replace(f"127.0.0.1:{README_PORT}", f"127.0.0.1:{port}")
    script = (f"set -a\n. {state}\nset -a\n{command}\n__status=$?\n"
              f"export -p > {state}\nexit $__status\n")
    completed = subprocess.run(["bash", "-c", script], cwd=folder, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=COMMAND_TIMEOUT)
    return completed.returncode, completed.stdout


@pytest.mark.runs_long
def test_readme_tour_runs_verbatim(tmp_path):
    steps = tour_steps(README.read_text())
    assert steps, "the README shows no `console` block with `$ ` commands"
    folder = tmp_path / "tour"
    folder.mkdir()
    prepare_folder(folder)
    state = tmp_path / "shell-variables.sh"
    state.write_text("")
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               IRTCAT_DATABASE_URL=f"sqlite:///{folder / 'irtcat.db'}")
    port = free_port()
    record_path = os.environ.get("IRTCAT_README_RECORD")
    record, server = [], None
    try:
        for step in steps:
            where = f"README.md line {step.line}: $ {step.command}"
            started = time.monotonic()
            if step.command.split("#")[0].strip() == "make run":
                print(f"{where}\n  run as `.venv/bin/irtcat demo --port {port}` in the "
                      "background (the environment is this suite's; the port a free one)")
                server = Server(folder, env, port)
                status, output = None, server.wait_serving()
            else:
                print(where)
                status, output = run_command(step, folder, env, state, port)
            print(f"  {time.monotonic() - started:.1f} s")
            record.append({"line": step.line, "command": step.command, "status": status,
                           "output": output})
            if status is not None:
                assert status == step.expected_status, (
                    f"{where}\nexited {status}, the README expects {step.expected_status}:\n"
                    f"{output}")
            if not record_path:
                missing = unmatched_lines(step, output, port)
                assert not missing, (
                    f"{where}\nshown lines not in the output: {missing}\n"
                    f"the output was:\n{output}")
    finally:
        if server is not None:
            server.stop()
        if record_path:
            pathlib.Path(record_path).write_text(json.dumps(record, indent=1))


def test_tour_parser_reads_commands_continuations_and_output():
    text = "\n".join([
        "```console", "$ echo one \\", "    two   # varies", "one two", "...",
        "$ irtcat x", "irtcat: error: bad", "```", "```", "$ not a tour command", "```"])
    steps = tour_steps(text)
    assert [step.command for step in steps] == ["echo one \\\n    two   # varies", "irtcat x"]
    assert steps[0].shown == ["one two", "..."] and steps[0].varies
    assert steps[0].expected_status == 0 and steps[1].expected_status == 2


def test_shown_lines_match_in_order_with_masks_and_elisions():
    step = Step(command="demo", line=1, shown=[
        "key: irtk_SHOWN", "...", "took 0.12 s; ... cycles", "last"])
    output = "key: irtk_OTHER\nprogress\ntook 3.5 s; 35 cycles\nlast\n"
    assert unmatched_lines(step, output, port=1) == []
    assert unmatched_lines(step, "last\nkey: irtk_X\ntook 1 s; 2 cycles\n", port=1) == ["last"]
    varying = Step(command="curl   # varies", line=1, shown=[
        '{"item":{"item_id":"ML-021","stem":"Why?","options":[1,2,3,4]},"position":2}'])
    assert unmatched_lines(
        varying, '{"item":{"item_id":"DE-1","stem":"How?","options":[1,2,3]},"position":2}',
        port=1) == []
    assert unmatched_lines(
        varying, '{"item":{"item_id":"DE-1","stem":"How?","options":[1,2,3]},"position":3}',
        port=1) != []
