"""`irtcat simulate`: the report, the persons file, seeds, replays and bad input.

The command runs in-process (main(argv) with capsys). Expected values come
from spec/FORMATS.md (keys, columns, exit status 2 with one stderr line) or
from the inputs we wrote (thetas, answer matrices).
"""

import csv
import json

import numpy as np
import pytest
from command_line import rows, run

from irtcat.api.cli import main

N_ITEMS = 60


@pytest.fixture
def bank_path(tmp_path):
    """A 60-item 2PL bank (two standards), seeded."""
    rng = np.random.default_rng(5)
    items = [{"id": f"I{j:02d}", "standard": "S1" if j % 2 else "S2", "model": "2pl",
              "a": round(float(rng.lognormal(0.0, 0.25)), 3),
              "b": round(float(rng.normal()), 3)} for j in range(N_ITEMS)]
    path = tmp_path / "bank.json"
    path.write_text(json.dumps({"format": "irtcat-bank/1", "items": items}))
    return path


@pytest.fixture
def config(tmp_path):
    def write(document, name="cat.json"):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return path
    return write


FIXED_10 = {"stop": {"min_items": 10, "max_items": 10, "se": None}}

# FORMATS.md, "Simulation report JSON"
REPORT_KEYS = {"examinees", "seed", "rmse", "bias", "mean_length", "exposure", "overlap_rate",
               "conditional", "seconds"}


def test_report_has_the_keys_of_formats_md(capsys, bank_path, config):
    # Expected: the keys of FORMATS.md's simulation report, with its nested keys.
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           config(FIXED_10), "--examinees", 300, "--seed", 3)
    assert status == 0 and err == ""
    report = json.loads(out)
    assert set(report) >= REPORT_KEYS
    assert set(report["exposure"]) == {"max", "mean", "unused_share"}
    for row in report["conditional"]:
        assert set(row) == {"theta", "n", "rmse", "bias"}
    assert report["examinees"] == 300 and report["seed"] == 3
    assert report["mean_length"] == 10.0                                 # fixed length
    assert sum(row["n"] for row in report["conditional"]) == 300
    assert report["exposure"]["mean"] == pytest.approx(10 / N_ITEMS, abs=1e-4)   # L / J
    assert 0 < report["rmse"] < 1


def test_classification_report(capsys, bank_path, config):
    # Expected: FORMATS.md: a "classification" block with accuracy and mean_length when
    # the configuration classifies.
    document = {"stop": {"min_items": 5, "max_items": 20, "se": None,
                         "classification": {"cut": 0.5}}}
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(document),
                         "--examinees", 200)
    assert status == 0
    block = json.loads(out)["classification"]
    assert {"accuracy", "mean_length"} <= set(block)
    assert 0.5 < block["accuracy"] <= 1 and 5 <= block["mean_length"] <= 20


def test_persons_file_lists_every_test(capsys, tmp_path, bank_path, config):
    # Expected: FORMATS.md: person_id,true_theta,theta,se,length,items with the items
    # joined by ';' in the order given; length = number of items; ids of the bank.
    persons = tmp_path / "persons.csv"
    report_path = tmp_path / "report.json"
    document = {"stop": {"min_items": 5, "max_items": 25, "se": 0.4}}
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(document),
                         "--examinees", 50, "--seed", 8, "--out", report_path,
                         "--persons", persons)
    assert status == 0 and out == ""                     # --out: nothing on stdout
    text = persons.read_text()
    assert text.splitlines()[0].split(",")[:6] == ["person_id", "true_theta", "theta", "se",
                                                   "length", "items"]   # first, in order
    table = rows(text)
    assert len(table) == 50
    bank_ids = {f"I{j:02d}" for j in range(N_ITEMS)}
    lengths = []
    for row in table:
        items = row["items"].split(";")
        assert int(row["length"]) == len(items) == len(set(items))
        assert set(items) <= bank_ids
        assert 5 <= len(items) <= 25
        assert int(row["length"]) == 25 or float(row["se"]) < 0.4     # the stopping rule
        lengths.append(len(items))
        float(row["true_theta"]), float(row["theta"])
    report = json.loads(report_path.read_text())
    assert report["mean_length"] == pytest.approx(np.mean(lengths), abs=1e-3)
    rmse = np.sqrt(np.mean([(float(r["theta"]) - float(r["true_theta"])) ** 2 for r in table]))
    assert report["rmse"] == pytest.approx(rmse, abs=1e-4)


def test_same_seed_same_report(capsys, bank_path, config):
    # Expected: the first run (seeded); only the wall-clock 'seconds' may differ.
    document = {"selection": {"method": "mfi", "randomesque": 3},
                "stop": {"min_items": 5, "max_items": 15, "se": 0.4}}
    path = config(document)
    reports = []
    for seed in (11, 11, 12):
        status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", path,
                             "--examinees", 200, "--seed", seed)
        assert status == 0
        report = json.loads(out)
        report.pop("seconds")
        reports.append(report)
    assert reports[0] == reports[1]
    assert reports[0] != reports[2]                  # and the seed matters


def test_theta_file_gives_the_true_thetas(capsys, tmp_path, bank_path, config):
    # Expected: the thetas we wrote, in the true_theta column, under our person ids.
    thetas = [-2.0, -0.75, 0.0, 0.5, 1.25, 2.5]
    theta_path = tmp_path / "thetas.csv"
    theta_path.write_text("person_id,theta\n" + "".join(f"p{i},{t}\n"
                                                        for i, t in enumerate(thetas)))
    persons = tmp_path / "persons.csv"
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                         "--theta", theta_path, "--persons", persons)
    assert status == 0
    table = rows(persons.read_text())
    assert [row["person_id"] for row in table] == [f"p{i}" for i in range(6)]
    assert [float(row["true_theta"]) for row in table] == thetas
    report = json.loads(out)
    assert report["examinees"] == 6
    error = [float(row["theta"]) - float(row["true_theta"]) for row in table]
    assert report["bias"] == pytest.approx(np.mean(error), abs=1e-4)


def _matrix(tmp_path, n_persons, columns, seed=6):
    rng = np.random.default_rng(seed)
    answers = (rng.random((n_persons, len(columns))) < 0.5).astype(int)
    path = tmp_path / "matrix.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", *columns])
        for i, row in enumerate(answers):
            writer.writerow([f"r{i}", *row])
    return path, answers


def test_responses_replay_reads_the_matrix(capsys, tmp_path, bank_path, config):
    # Expected: FORMATS.md: a replay reads each answer from the matrix; without --theta
    # there is no truth, so no rmse, bias or conditional rows. The matrix columns are
    # shuffled (order must not matter); the same matrix replays to the same tests.
    columns = [f"I{j:02d}" for j in np.random.default_rng(1).permutation(N_ITEMS)]
    matrix_path, answers = _matrix(tmp_path, 40, columns)
    persons = tmp_path / "persons.csv"
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                           "--responses", matrix_path, "--persons", persons, "--seed", 1)
    assert status == 0 and err == ""
    report = json.loads(out)
    assert not {"rmse", "bias", "conditional"} & set(report)
    assert report["examinees"] == 40 and report["mean_length"] == 10.0
    first = persons.read_text()
    table = rows(first)
    assert [row["person_id"] for row in table] == [f"r{i}" for i in range(40)]
    assert all(row["true_theta"] == "" for row in table)
    # replay again with another seed: MFI reads the same answers, gives the same tests
    status, _, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                       "--responses", matrix_path, "--persons", persons, "--seed", 2)
    assert status == 0 and persons.read_text() == first
    # the answers read are the matrix's: EAP of each person's pattern from `irtcat score`
    pattern_path = tmp_path / "patterns.csv"
    with pattern_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "item_id", "response"])
        for i, row in enumerate(table):
            for item in row["items"].split(";"):
                writer.writerow([row["person_id"], item, answers[i, columns.index(item)]])
    status, out, _ = run(capsys, "score", pattern_path, "--bank", bank_path)
    assert status == 0
    scored = {row["person_id"]: float(row["theta"]) for row in rows(out)}
    for row in table:
        assert float(row["theta"]) == pytest.approx(scored[row["person_id"]], abs=2e-6)


def test_responses_with_theta_report_accuracy(capsys, tmp_path, bank_path, config):
    # Expected: with --theta beside --responses the truth is known: rmse is reported, and
    # the thetas are the file's.
    matrix_path, _ = _matrix(tmp_path, 5, [f"I{j:02d}" for j in range(N_ITEMS)])
    theta_path = tmp_path / "thetas.csv"
    theta_path.write_text("person_id,theta\n" + "".join(f"r{i},{i - 2}\n" for i in range(5)))
    persons = tmp_path / "persons.csv"
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                         "--responses", matrix_path, "--theta", theta_path,
                         "--persons", persons)
    assert status == 0
    assert "rmse" in json.loads(out)
    assert [float(row["true_theta"]) for row in rows(persons.read_text())] == [-2, -1, 0, 1, 2]


@pytest.mark.parametrize("theta_ids", [["r2", "r1", "r0"], ["x", "y", "z"]],
                         ids=["reordered", "other-persons"])
def test_theta_and_responses_are_paired_by_person(capsys, tmp_path, bank_path, config,
                                                  theta_ids):
    # Expected: the theta file's own pairs (person_id -> theta): a person's true_theta is
    # the theta given for that person, or, where the files do not hold the same persons,
    # exit 2 with one line (the command's own message: "must hold the same persons").
    matrix_path, _ = _matrix(tmp_path, 3, [f"I{j:02d}" for j in range(N_ITEMS)])
    given = dict(zip(theta_ids, [2.0, 1.0, 0.0], strict=True))
    theta_path = tmp_path / "thetas.csv"
    theta_path.write_text("person_id,theta\n" + "".join(f"{p},{t}\n" for p, t in given.items()))
    persons = tmp_path / "persons.csv"
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           config(FIXED_10), "--responses", matrix_path, "--theta", theta_path,
                           "--persons", persons, "--out", tmp_path / "report.json")
    if set(theta_ids) != {"r0", "r1", "r2"}:
        _one_line_error(status, out, err)
        return
    assert status == 0
    for row in rows(persons.read_text()):
        assert float(row["true_theta"]) == given[row["person_id"]]


@pytest.mark.parametrize("option", ["--theta", "--responses"])
def test_no_examinees_is_bad_input(capsys, tmp_path, bank_path, config, option):
    # Expected: FORMATS.md: bad input -> exit 2 with one line (never an internal error).
    path = tmp_path / "empty.csv"
    header = ["person_id", "theta"] if option == "--theta" else \
        ["person_id"] + [f"I{j:02d}" for j in range(N_ITEMS)]
    path.write_text(",".join(header) + "\n")
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           config(FIXED_10), option, path)
    _one_line_error(status, out, err)


def test_sympson_hetter_is_tuned_and_saved(capsys, tmp_path, bank_path, config):
    # Expected: without exposure.parameters the command tunes them and --save-design
    # writes the configuration with exposure.parameters: bank item id -> number in [0, 1];
    # the saved file is a valid configuration that needs no tuning.
    document = {"exposure": {"method": "sympson-hetter", "target": 0.3},
                "stop": {"min_items": 10, "max_items": 10, "se": None}}
    saved = tmp_path / "tuned.json"
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", config(document),
                         "--examinees", 200, "--save-design", saved)
    assert status == 0
    assert "sympson_hetter_tuning" in json.loads(out)
    design = json.loads(saved.read_text())
    parameters = design["exposure"]["parameters"]
    assert parameters                                   # target 0.3 < MFI's 1.0: some K < 1
    assert set(parameters) <= {f"I{j:02d}" for j in range(N_ITEMS)}
    for value in parameters.values():
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert 0 <= value <= 1
    assert design["stop"] == document["stop"] and design["exposure"]["target"] == 0.3
    status, out, _ = run(capsys, "simulate", "--bank", bank_path, "--config", saved,
                         "--examinees", 200)
    assert status == 0 and "sympson_hetter_tuning" not in json.loads(out)


def _one_line_error(status, out, err):
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("irtcat: error: ")
    assert "Traceback" not in err


def test_malformed_config_json(capsys, tmp_path, bank_path):
    # Expected: FORMATS.md: bad input -> exit 2, one line on stderr.
    path = tmp_path / "cat.json"
    path.write_text('{"stop": {"max_items": 10,')
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config", path)
    _one_line_error(status, out, err)
    assert "malformed JSON" in err and "cat.json" in err


@pytest.mark.parametrize("document, message", [
    ({"stop": {"max_items": 10, "sem": 0.3}}, "unknown key 'sem'"),
    ({"selection": {"method": "fastest"}}, "selection.method"),
    ({"stop": {"min_items": 12, "max_items": 8}}, "stop.max_items"),
    ({"content": [{"standard": "S9", "min": 2}]}, "S9"),
    ([1, 2], "must be an object"),
])
def test_bad_config_exits_2_with_one_line(capsys, bank_path, config, document, message):
    # Expected: FORMATS.md: bad input -> exit 2, one line naming the problem.
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           config(document), "--examinees", 10)
    _one_line_error(status, out, err)
    assert message in err


def test_responses_missing_a_bank_item(capsys, tmp_path, bank_path, config):
    # Expected: FORMATS.md: a replay holds every item's answer; the missing column is named.
    columns = [f"I{j:02d}" for j in range(N_ITEMS) if j != 17]
    matrix_path, _ = _matrix(tmp_path, 5, columns)
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                           "--responses", matrix_path)
    _one_line_error(status, out, err)
    assert "I17" in err


def test_responses_with_an_empty_cell(capsys, tmp_path, bank_path, config):
    # Expected: every examinee needs every answer: an empty cell is bad input, named.
    path = tmp_path / "matrix.csv"
    header = ["person_id"] + [f"I{j:02d}" for j in range(N_ITEMS)]
    cells = ["1"] * N_ITEMS
    cells[3] = ""
    path.write_text(",".join(header) + "\n" + ",".join(["r0", *cells]) + "\n")
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config", config(FIXED_10),
                           "--responses", path)
    _one_line_error(status, out, err)
    assert "I03" in err


@pytest.mark.parametrize("argv, message", [
    (["--examinees", "0"], "--examinees"),
    (["--theta", "missing.csv"], "missing.csv"),
])
def test_bad_arguments_exit_2(capsys, bank_path, config, argv, message):
    # Expected: FORMATS.md: bad usage -> exit 2, one line.
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           config(FIXED_10), *argv)
    _one_line_error(status, out, err)
    assert message in err


def test_missing_config_file(capsys, tmp_path, bank_path):
    # Expected: FORMATS.md: exit 2, one line naming the file.
    status, out, err = run(capsys, "simulate", "--bank", bank_path, "--config",
                           tmp_path / "nope.json")
    _one_line_error(status, out, err)
    assert "nope.json" in err


@pytest.mark.parametrize("config, message", [
    ({"stop": {"classification": {"cut": 0.0, "alpha": 0}}}, "stop.classification.alpha"),
    ({"content": {"standard": "AI-ML-01"}}, "content must be a list"),
    ({"enemies": "Q1"}, "enemies must be a list"),
])
def test_config_values_out_of_range_are_bad_input(capsys, tmp_path, config, message):
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": f"Q{j}", "standard": "AI-ML-01", "model": "2pl", "a": 1.0, "b": 0.1 * j}
        for j in range(10)]}))
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(config))
    status = main(["simulate", "--bank", str(bank), "--config", str(path), "--examinees", "5"])
    _, err = capsys.readouterr()
    assert status == 2 and err.count("\n") == 1 and message in err


def test_a_folder_as_config_is_bad_input(capsys, tmp_path):
    bank = tmp_path / "bank.json"
    bank.write_text(json.dumps({"format": "irtcat-bank/1", "items": [
        {"id": "Q1", "model": "2pl", "a": 1.0, "b": 0.0}]}))
    status = main(["simulate", "--bank", str(bank), "--config", str(tmp_path)])
    _, err = capsys.readouterr()
    assert status == 2 and "is a directory" in err
