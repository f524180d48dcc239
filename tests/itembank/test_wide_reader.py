"""The wide CSV's three readers give one result: single-digit dense files read as bytes,
small files by the csv module, large ones by pandas."""

import pathlib

import numpy as np
import pytest

from irtcat.itembank import io as bank_io
from irtcat.itembank.errors import DataFormatError

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


def _general(path, **options):
    """The file read without the single-digit path."""
    original = bank_io._wide_digits
    bank_io._wide_digits = lambda path, width: None
    try:
        return bank_io.read_responses(path, **options)
    finally:
        bank_io._wide_digits = original


@pytest.mark.parametrize("name", ["LSAT7.csv", "Science.csv", "SAT12_keyed_sparse30.csv",
                                  "verbal.csv"])
def test_bundled_data_read_alike(name):
    fast, general = bank_io.read_responses(DATA / name), _general(DATA / name)
    assert fast.person_ids == general.person_ids and fast.item_ids == general.item_ids
    np.testing.assert_array_equal(fast.responses, general.responses)


@pytest.mark.parametrize("text", [
    "person_id,i1,i2\np1,0,1\np2,1,0\n",
    "\ufeffperson_id,i1,i2\r\np1,0,1\r\np2,1,0\r\n\r\n",         # BOM, CRLF, a blank end
    "person_id,i1,i2\np1,0,1\np2,1,0",                           # no final newline
    "person_id,i1,i2\np1,0,\np2,1,0\n",                          # a missing cell
    "person_id,i1,i2\np1,0,NA\np2,1,0\n",                        # R's NA
    "person_id,i1,i2\np1,0,12\np2,1,0\n",                        # two digits
    "person_id,i1,i2\n\"p,1\",0,1\np2,1,0\n",                    # a quoted id
    "person_id,i1,i2\np1, 0,1\np2,1,0\n",                        # a space
    "person_id,i1,i2\np1,0,1\n\np2,1,0\n",                       # a blank line inside
])
def test_small_files_read_alike(tmp_path, text):
    path = tmp_path / "wide.csv"
    path.write_bytes(text.encode())
    fast, general = bank_io.read_responses(path), _general(path)
    assert fast.person_ids == general.person_ids
    np.testing.assert_array_equal(fast.responses, general.responses)


def test_errors_are_the_same_on_the_digit_path(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("person_id,i1,i2\np1,0,1\np1,1,0\n")
    with pytest.raises(DataFormatError, match="duplicate person_id 'p1'"):
        bank_io.read_responses(path)
    path.write_text("person_id,i1,i2\n,0,1\np2,1,0\n")
    with pytest.raises(DataFormatError, match="line 2: empty person_id"):
        bank_io.read_responses(path)
    path.write_text("person_id,i1,i2\np1,0,x\np2,1,0\n")
    with pytest.raises(DataFormatError, match="i2, person p1: response 'x'"):
        bank_io.read_responses(path)
