"""Long CSVs read as response logs, in chunks (itembank.io.read_response_log)."""

import numpy as np
import pytest

import irtcat.itembank.io as io


def write(tmp_path, rows):
    path = tmp_path / "log.csv"
    path.write_text("person_id,item_id,response\n" + "".join(f"{r}\n" for r in rows))
    return path


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(io, "LOG_CHUNK_ROWS", 3)   # every few rows start a new chunk


def test_chunks_give_the_same_log_as_one_read(tmp_path, small_chunks):
    rows = [f"p{i % 5},Q{(i * 7) % 4},{i % 2}" for i in range(20) if (i * 7) % 4 != i % 5]
    rows = list(dict.fromkeys(rows))                # no (person, item) twice
    path = write(tmp_path, rows)
    log = io.read_response_log(path)
    # Closed form: the codes map back to exactly the rows written, in order.
    rebuilt = [f"{log.person_ids[p]},{log.item_ids[i]},{int(r)}"
               for p, i, r in zip(log.person_index, log.item_index, log.response, strict=True)]
    assert rebuilt == rows
    assert log.person_ids == list(dict.fromkeys(r.split(",")[0] for r in rows))


def test_a_repeat_across_chunks_names_its_line(tmp_path, small_chunks):
    path = write(tmp_path, ["p1,Q1,1", "p2,Q1,0", "p3,Q2,1", "p4,Q2,0", "p1,Q1,0"])
    with pytest.raises(io.DataFormatError, match="line 6: person 'p1' answered item 'Q1' twice"):
        io.read_response_log(path)


def test_a_bad_value_in_a_later_chunk_names_its_line(tmp_path, small_chunks):
    path = write(tmp_path, ["p1,Q1,1", "p2,Q1,0", "p3,Q2,1", "p4,Q2,x"])
    with pytest.raises(io.DataFormatError, match="line 5"):
        io.read_response_log(path)


def test_an_empty_id_in_a_later_chunk_names_its_line(tmp_path, small_chunks):
    path = write(tmp_path, ["p1,Q1,1", "p2,Q1,0", "p3,Q2,1", ",Q2,0"])
    with pytest.raises(io.DataFormatError, match="line 5: empty person_id"):
        io.read_response_log(path)


def test_log_matches_the_dense_reader(tmp_path, small_chunks):
    rng = np.random.default_rng(3)
    rows = [f"p{p},Q{q},{rng.integers(0, 3)}" for p in range(6) for q in range(4)
            if rng.random() < 0.7]
    path = write(tmp_path, rows)
    log, dense = io.read_response_log(path), io.read_responses(path)
    matrix = np.full((len(log.person_ids), len(log.item_ids)), np.nan)
    matrix[log.person_index, log.item_index] = log.response
    order_p = [dense.person_ids.index(p) for p in log.person_ids]
    order_i = [dense.item_ids.index(i) for i in log.item_ids]
    np.testing.assert_array_equal(matrix, dense.responses[np.ix_(order_p, order_i)])
