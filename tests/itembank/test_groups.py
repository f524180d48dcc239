"""Reading each person's group code beside the responses (multiple-group calibration, DIF)."""

import pathlib

import numpy as np
import pytest

from irtcat.itembank import io as bank_io
from irtcat.itembank.errors import DataFormatError

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(params=["csv module", "pandas"])
def parser(request, monkeypatch):
    """Both wide readers: the csv module (small files) and pandas (large ones)."""
    if request.param == "pandas":
        monkeypatch.setattr(bank_io, "SMALL_CSV_BYTES", 0)
    return request.param


def test_wide_group_column_is_not_an_item(parser):
    # verbal.csv (shared/refs2 README): 316 persons, 24 items and a group column,
    # 0 = women, 1 = men; the first person is a man.
    data = bank_io.read_responses(DATA / "verbal.csv", group="group")
    assert data.responses.shape == (316, 24)
    assert "group" not in data.item_ids
    assert data.groups[0] == "1" and sorted(set(data.groups)) == ["0", "1"]
    plain = bank_io.read_responses(DATA / "verbal.csv")
    np.testing.assert_array_equal(plain.responses[:, 1:], data.responses)


def test_text_group_codes_and_a_missing_code(tmp_path, parser):
    path = tmp_path / "wide.csv"
    path.write_text("person_id,i1,sex,i2\np1,0,F,1\np2,1,M,\n")
    data = bank_io.read_responses(path, group="sex")
    assert data.item_ids == ["i1", "i2"] and data.groups == ["F", "M"]
    path.write_text("person_id,i1,sex,i2\np1,0,F,1\np2,1,NA,0\n")
    with pytest.raises(DataFormatError, match="no sex for person 'p2'"):
        bank_io.read_responses(path, group="sex")
    with pytest.raises(DataFormatError, match="no column 'age'"):
        bank_io.read_responses(path, group="age")


def test_long_file_takes_groups_from_a_person_attribute_file(tmp_path):
    log = tmp_path / "long.csv"
    log.write_text("person_id,item_id,response\np1,i1,1\np2,i1,0\np2,i2,1\n")
    with pytest.raises(DataFormatError, match="person attribute file"):
        bank_io.read_responses(log, group="sex")
    attributes = tmp_path / "persons.csv"
    attributes.write_text("person_id,sex\np2,M\np1,F\n")
    data = bank_io.read_responses(log, group="sex", groups_path=attributes)
    assert dict(zip(data.person_ids, data.groups, strict=True)) == {"p1": "F", "p2": "M"}
    attributes.write_text("person_id,sex\np2,M\n")
    with pytest.raises(DataFormatError, match="no sex for person 'p1'"):
        bank_io.read_responses(log, group="sex", groups_path=attributes)
