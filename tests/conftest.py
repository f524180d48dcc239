"""Shared fixtures: paths to the bundled data and a seeded generator."""

import json
import pathlib

import numpy as np
import pytest

DATA = pathlib.Path(__file__).resolve().parent / "data"
DEMO = pathlib.Path(__file__).resolve().parents[1] / "api" / "demo"


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture
def lsat7_bank_path():
    return DEMO / "LSAT7_bank.json"


@pytest.fixture
def lsat7_data_path():
    return DEMO / "LSAT7.csv"


@pytest.fixture
def write_json(tmp_path):
    def write(document, name="bank.json"):
        path = tmp_path / name
        path.write_text(json.dumps(document))
        return path
    return write
