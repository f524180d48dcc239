"""What a new user meets first: start-up imports, usage errors, mirt's spellings,
help defaults, messages, progress, NA cells, `keys list`, `make run PORT=...`."""

import io
import json
import os
import pathlib
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest

from irtcat.api import cli
from irtcat.api.cli import main
from irtcat.delivery.cat_config import design_from_config
from irtcat.engine.names import canonical_method, canonical_model
from irtcat.itembank import io as bank_io
from irtcat.itembank import read_bank, read_response_log, read_responses

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
LSAT7 = DATA / "LSAT7.csv"
HEAVY = ("numpy", "scipy", "pandas", "sqlalchemy", "flask", "matplotlib")


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def loaded_after(code):
    """The HEAVY modules a fresh interpreter has loaded after running `code`."""
    probe = (f"import sys\n{code}\n"
             f"print('LOADED', *(m for m in {HEAVY!r} if m in sys.modules), sep=',')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].removeprefix("LOADED").lstrip(",")


# --- start-up: each command imports what it uses ------------------------------------------

def test_help_and_the_packages_import_nothing_heavy():
    assert loaded_after("import irtcat, irtcat.api, irtcat.api.cli") == ""
    assert loaded_after("from irtcat.api.cli import main\n"
                        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass") == ""


def test_score_loads_numpy_alone(lsat7_bank_path):
    # no pandas, database, web or plotting library, and no scipy (the kernel's logistic
    # function and logsumexp are numpy's): 0.14 s of the command's start
    loaded = loaded_after(f"from irtcat.api.cli import main\n"
                          f"assert main(['score', {str(LSAT7)!r}, '--bank', "
                          f"{str(lsat7_bank_path)!r}, '--out', '/dev/null']) == 0")
    assert set(loaded.split(",")) == {"numpy"}


def test_writing_to_a_device_writes_through_it(tmp_path):
    """--out /dev/null (or a FIFO) is written in place: an atomic rename over it would
    replace the device with a regular file (for root, /dev/null itself)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    bank_io.write_atomically(str(fifo), lambda handle: handle.write("through\n"))
    assert reader.communicate(timeout=30)[0] == "through\n"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# --- absurd values: usage errors before any work --------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["score", LSAT7, "--quadpts", "100000000000"], "--quadpts: takes at most 1001 nodes"),
    (["score", LSAT7, "--prior-mean", "1e308"], "--prior-mean: must be a number from -6 to 6"),
    (["score", LSAT7, "--prior-mean", "nan"], "--prior-mean: must be a number"),
    (["score", LSAT7, "--prior-sd", "1e308"], "--prior-sd: must be <= 100"),
    (["calibrate", LSAT7, "--model", "2pl", "--quadpts", "100000000000"], "at most 1001 nodes"),
    (["calibrate", LSAT7, "--model", "2pl", "--max-iter", "10000000000"], "must be <= 100000"),
    (["calibrate", LSAT7, "--model", "2pl", "--tol", "inf"], "--tol: must be <= 1"),
    (["simulate", "--config", "cat.json", "--examinees", "1e11"], "expected a whole number"),
    (["simulate", "--config", "cat.json", "--examinees", "100000000000"],
     "--examinees: must be <= 10000000"),
    (["simulate", "--config", "cat.json", "--seed", "-1"], "--seed: must be >= 0"),
])
def test_absurd_values_are_usage_errors(capsys, tmp_path, lsat7_bank_path, argv, message):
    out_path = tmp_path / "out.file"
    argv = [*argv, "--bank", lsat7_bank_path, "--out", out_path]
    if argv[0] == "calibrate":
        argv = argv[:-4] + ["--out", out_path]            # calibrate's --bank tags items
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.count("\n") == 1 and message in err
    assert not out_path.exists()


@pytest.mark.parametrize("argv, message", [
    (["serve", "--port", "99999"], "--port: must be <= 65535"),
    (["serve", "--port", "0"], "--port: must be >= 1"),
    (["serve", "--workers", "0"], "--workers: must be >= 1"),
    (["serve", "--threads", "0"], "--threads: must be >= 1"),
    (["demo", "--port", "99999"], "--port: must be <= 65535"),
    (["demo", "--workers", "0"], "--workers: must be >= 1"),
])
def test_server_options_out_of_range_start_nothing(tmp_path, argv, message):
    # In a child with a time limit: before, --workers 0 served without ever answering.
    environment = {**os.environ, "IRTCAT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "irtcat.api.cli", *argv], capture_output=True,
                          text=True, timeout=60, env=environment, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("cell", ["1e23", "99999999999", "101"])
def test_a_huge_response_is_not_a_category(capsys, tmp_path, lsat7_bank_path, cell):
    path = tmp_path / "data.csv"
    path.write_text(f"person_id,Item.1,Item.2\np1,{cell},0\np2,0,1\np3,1,1\n")
    for argv in (["score", path, "--bank", lsat7_bank_path],
                 ["calibrate", path, "--model", "grm", "--no-fit"]):
        status, out, err = run(capsys, *argv, "--out", tmp_path / "out")
        assert status == 2 and out == "" and err.count("\n") == 1
        assert f"response '{cell}' is not a category (a whole number from 0 to 100)" in err
    with pytest.raises(bank_io.DataFormatError, match="is not a category"):
        read_response_log(path)     # before, 99999999999 sized arrays of 10^11 categories


# --- mirt's spellings ---------------------------------------------------------------------

@pytest.mark.parametrize("spelling, ours", [
    # mirt's itemtype names of the models irtcat fits (shared/refs: itemtype = '2PL',
    # '3PL', 'Rasch', 'graded', 'gpcm'), and irtcat's own in any case
    ("Rasch", "rasch"), ("2PL", "2pl"), ("3PL", "3pl"), ("4PL", "4pl"), ("graded", "grm"),
    ("gpcm", "gpcm"), ("gpcmIRT", "gpcm"), ("1PL", "1pl"), ("GRM", "grm"), ("PCM", "pcm"),
    ("nominal", "nominal"), ("Nominal", "nominal"),      # refs2: itemtype = 'nominal'
])
def test_mirt_model_names(spelling, ours):
    assert canonical_model(spelling) == ours


def test_unknown_names_are_refused_with_the_choices():
    # mirt's nested logit model, which irtcat does not fit
    with pytest.raises(ValueError, match="unknown model '2PLNRM'; expected one of rasch"):
        canonical_model("2PLNRM")
    assert canonical_model("2PLNRM", strict=False) == "2PLNRM"
    assert [canonical_method(name) for name in ("EAP", "MAP", "ML", "WLE", "EAPsum")] == \
        ["eap", "map", "ml", "wle", "eapsum"]                      # mirt's fscores methods
    assert canonical_method("BM") == "map" and canonical_method("WL") == "wle"   # catR's


def test_calibrate_with_mirt_spellings(capsys, tmp_path):
    for spelling, ours, data in (("2PL", "2pl", LSAT7), ("graded", "grm", DATA / "Science.csv")):
        status, _, _ = run(capsys, "calibrate", data, "--model", spelling, "--no-fit",
                           "--out", tmp_path / f"{spelling}.json")
        assert status == 0
        status, _, _ = run(capsys, "calibrate", data, "--model", ours, "--no-fit",
                           "--out", tmp_path / f"{ours}.json")
        assert status == 0
        theirs = json.loads((tmp_path / f"{spelling}.json").read_text())
        mine = json.loads((tmp_path / f"{ours}.json").read_text())
        assert theirs["items"] == mine["items"]


def test_score_and_cat_configuration_with_mirt_spellings(capsys, lsat7_bank_path):
    _, upper, _ = run(capsys, "score", LSAT7, "--bank", lsat7_bank_path, "--method", "EAP")
    _, lower, _ = run(capsys, "score", LSAT7, "--bank", lsat7_bank_path, "--method", "eap")
    assert upper == lower and upper.startswith("person_id,theta,se\n")
    bank = read_bank(lsat7_bank_path)
    assert design_from_config({"scoring": {"method": "EAP"}}, bank).scoring.method == "eap"
    assert design_from_config({"scoring": {"method": "BM"}}, bank).scoring.method == "map"


# --- help shows every default ---------------------------------------------------------------

def _parsers(parser):
    yield parser
    for action in parser._actions:
        for child in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict):
                yield from _parsers(action.choices[child])


def test_every_option_with_a_default_shows_it():
    for parser in _parsers(cli._build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or action.default in (None, False, "==SUPPRESS=="):
                continue
            shown = f"(default: {action.default})" in text or (
                "default" in (action.help or "") and str(action.default) in text)
            assert shown, (parser.prog, action.option_strings)


# --- messages -------------------------------------------------------------------------------

def test_non_convergence_names_the_option_and_counts_agree(capsys, tmp_path):
    status, _, err = run(capsys, "calibrate", LSAT7, "--model", "3pl", "--max-iter", "1",
                         "--no-fit", "--out", tmp_path / "bank.json")
    assert status == 0
    assert "EM did not converge in 1 cycle " in err and "--max-iter" in err
    assert "NOT converged in 1 cycle," in err and "5 items, 1000 persons" in err


def test_by_standard_refuses_a_file_name_for_its_folder(capsys, tmp_path):
    bank = tmp_path / "tags.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": f"Item.{j}", "model": "2pl", "standard": "S"} for j in range(1, 6)]}))
    status, out, err = run(capsys, "calibrate", LSAT7, "--by-standard", bank,
                           "--out", tmp_path / "byfile.json")
    assert status == 2 and err.count("\n") == 1 and "names a file; give a folder" in err
    assert not (tmp_path / "byfile.json").exists()
    status, _, _ = run(capsys, "calibrate", LSAT7, "--by-standard", bank, "--no-fit",
                       "--out", tmp_path / "banks")
    assert status == 0 and (tmp_path / "banks" / "S.json").is_file()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_one_line_in_place_on_a_terminal_a_line_every_few_seconds_elsewhere():
    cycles = [(cycle, -2000.0 - cycle, 1e-3, 0.1 * cycle) for cycle in range(1, 501)]  # 50 s
    log = io.StringIO()
    progress = cli.Progress(False, stream=log)
    for cycle in cycles:
        progress(*cycle)
    progress.close()
    lines = log.getvalue().splitlines()
    assert 9 <= len(lines) <= 11                  # from 2 s to 50 s, one line per 5 s
    terminal = _Terminal()
    progress = cli.Progress(False, stream=terminal)
    for cycle in cycles:
        progress(*cycle)
    progress.close()
    assert terminal.getvalue().count("\n") == 1 and terminal.getvalue().endswith("\n")
    assert terminal.getvalue().count("\r") == 481          # every cycle from 2 s, in place


# --- NA cells -------------------------------------------------------------------------------

@pytest.mark.parametrize("small", [True, False], ids=["csv-module", "pandas"])
def test_na_reads_as_missing(tmp_path, monkeypatch, small):
    if not small:
        monkeypatch.setattr(bank_io, "SMALL_CSV_BYTES", 0)
    wide_na = tmp_path / "na.csv"
    wide_na.write_text("person_id,Q1,Q2,Q3\np1,NA,1,0\np2,1,,NA\np3,0,1,1\n")
    data = read_responses(wide_na)
    expected = np.array([[np.nan, 1, 0], [1, np.nan, np.nan], [0, 1, 1]])
    np.testing.assert_array_equal(data.responses, expected)
    long_na = tmp_path / "long.csv"
    long_na.write_text("person_id,item_id,response\np1,Q1,NA\np1,Q2,1\np2,Q1,\np2,Q2,0\n")
    log = read_response_log(long_na)
    assert log.person_ids == ["p1", "p2"] and log.item_ids == ["Q2"]
    np.testing.assert_array_equal(log.response, [1, 0])


@pytest.mark.parametrize("small", [True, False], ids=["csv-module", "pandas"])
@pytest.mark.parametrize("text, message", [
    ("person_id,Q1,Q2\np1,-1,0\n", "response '-1' is not a category"),
    ("person_id,Q1,Q2\np1,0.5,0\n", "response '0.5' is not a category"),
    ("person_id,Q1,Q2\np1,x,0\n", "Q1, person p1: response 'x' is not a category"),
    ("person_id,Q1,Q2\np1,1,0,1,1\n", "malformed CSV"),
    ("person_id,Q1,Q2\n,1,0\n", "line 2: empty person_id"),
    ("person_id,Q1,Q2\np1,1,0\np1,0,1\n", "duplicate person_id 'p1'"),
])
def test_both_wide_parsers_refuse_alike(tmp_path, monkeypatch, small, text, message):
    if not small:
        monkeypatch.setattr(bank_io, "SMALL_CSV_BYTES", 0)
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(bank_io.DataFormatError, match=message):
        read_responses(path)


def test_both_wide_parsers_read_a_file_alike(monkeypatch):
    small = read_responses(DATA / "Science.csv")
    monkeypatch.setattr(bank_io, "SMALL_CSV_BYTES", 0)
    large = read_responses(DATA / "Science.csv")
    assert small.person_ids == large.person_ids and small.item_ids == large.item_ids
    np.testing.assert_array_equal(small.responses, large.responses)


# --- keys, the demo's port, make run --------------------------------------------------------

def test_keys_list_has_a_header(irtcat):
    status, key, _ = irtcat("keys", "create", "--role", "admin", "--name", "ada")
    assert status == 0
    status, out, _ = irtcat("keys", "list")
    header, row = out.splitlines()
    assert header.split() == ["key", "role", "state", "created", "(UTC)", "name"]
    assert row.startswith(key.strip()[:12] + "...") and row.split()[1:3] == ["admin", "active"]


def test_demo_reports_a_busy_port_before_making_anything(irtcat):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        status, out, err = irtcat("demo", "--port", busy.getsockname()[1])
    assert status == 2 and out == "" and err.count("\n") == 1 and "cannot serve" in err
    status, out, _ = irtcat("keys", "list")
    assert status == 0 and len(out.splitlines()) == 1            # the header: no key made


def test_make_run_takes_a_port():
    done = subprocess.run(["make", "-n", "run", "PORT=8010"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "irtcat demo --port 8010" in done.stdout


# --- the simulation report's captions --------------------------------------------------------

def test_exposure_caption_mentions_the_target_line_only_when_drawn(capsys, tmp_path,
                                                                   lsat7_bank_path):
    # 5 items, 5 per test: every rate is 1.0, and a target under 1.0 is refused.
    for exposure, drawn in (({}, False), ({"method": "sympson-hetter", "target": 1.0}, True)):
        config = tmp_path / "cat.json"
        config.write_text(json.dumps({"stop": {"min_items": 5, "max_items": 5},
                                      "exposure": exposure}))
        status, _, _ = run(capsys, "simulate", "--bank", lsat7_bank_path, "--config", config,
                           "--examinees", 50, "--out", tmp_path / "report.json",
                           "--report", tmp_path / "report.html")
        assert status == 0
        page = (tmp_path / "report.html").read_text()
        assert ("the dashed line is the target" in page) == drawn


def test_the_input_errors_named_for_exit_2_exist():
    # main() finds these classes by module and name without importing them: a class that
    # moves must move here too, or its errors would exit 1 as internal ones.
    import importlib

    for module, name in cli._INPUT_ERRORS:
        assert issubclass(getattr(importlib.import_module(module), name), Exception)


def test_a_one_sided_bound_is_stated_without_none(lsat7_bank_path):
    """A CAT configuration value under its only bound (the prior's SD, above 0) says
    ">= 1e-06", never "[1e-06, None]"."""
    bank = read_bank(lsat7_bank_path)
    with pytest.raises(bank_io.DataFormatError) as refused:
        design_from_config({"scoring": {"prior": {"sd": 0}}}, bank)
    assert "must be >= 1e-06" in str(refused.value) and "None" not in str(refused.value)
