"""features.sources' two CSV readers: a plain file (no quote after the header, UTF-8, no NUL) is read by Arrow,
and every chunk it yields — cells, line numbers, rejected rows — equals what pandas' reader yields, whether the
file is regular throughout or turns irregular (too many fields, too few, blank lines, spaces) after some chunks."""

from __future__ import annotations

import pandas as pd
import pytest

from features import sources

HEADER = "enterprise_id,name,sector,township"


def _chunks(reader, source, chunk_rows):
    out = []
    for chunk in reader(source, chunk_rows):
        rejected = None if chunk.rejected is None else chunk.rejected.to_dict("index")
        out.append((chunk.cells, rejected))
    return out


def _same(path, chunk_rows, *, plain=True):
    (source,) = sources.find_sources(path, table="enterprises")
    assert source.plain is plain
    expected = _chunks(sources._csv_chunks, source, chunk_rows)
    got = _chunks(sources.read_raw, source, chunk_rows)
    assert len(got) == len(expected)
    for (cells, rejected), (want_cells, want_rejected) in zip(got, expected):
        pd.testing.assert_frame_equal(cells, want_cells, check_index_type=True)
        assert rejected == want_rejected
    return got


def _rows(n, start=0):
    return [f"E{i:06d}, name {i} ,coal,t{i % 7}" for i in range(start, start + n)]


@pytest.mark.parametrize("chunk_rows", [7, 100, 10_000])
@pytest.mark.parametrize("odd", ["E999999,x,coal,t,EXTRA", "E999999,x", "", "   "])
def test_a_plain_file_that_turns_irregular_reads_as_pandas_reads_it(tmp_path, chunk_rows, odd):
    path = tmp_path / "enterprises.csv"
    path.write_text("\n".join([HEADER, *_rows(250), odd, *_rows(50, 250)]) + "\n", encoding="utf-8")
    got = _same(path, chunk_rows)
    lines = pd.concat([cells for cells, _ in got]).index
    assert lines[0] == 2  # the odd row is line 252: the rows after it keep their lines
    assert lines[-1] == 302 and lines.is_monotonic_increasing


@pytest.mark.parametrize("chunk_rows", [9, 1000])
def test_crlf_bom_no_trailing_newline_and_header_only_files_read_alike(tmp_path, chunk_rows):
    path = tmp_path / "enterprises.csv"
    path.write_bytes(("\r\n".join(['"enterprise_id","name","sector","township"', *_rows(40)])).encode("utf-8-sig"))
    got = _same(path, chunk_rows)
    assert sum(len(cells) for cells, _ in got) == 40
    path.write_text(HEADER + "\n", encoding="utf-8")
    assert [len(cells) for cells, _ in _same(path, chunk_rows)] == [0]


def test_quotes_or_lone_carriage_returns_after_the_header_keep_pandas_reader(tmp_path):
    path = tmp_path / "enterprises.csv"
    path.write_text("\n".join([HEADER, *_rows(5), 'E7,"a\nb",coal,t']) + "\n", encoding="utf-8")
    _same(path, 3, plain=False)
    path.write_bytes("\r".join([HEADER, *_rows(5)]).encode())
    _same(path, 3, plain=False)
