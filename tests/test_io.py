"""Atomic writes: a failed write leaves neither a partial file nor a temporary one."""

import os
import stat

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from debatch.core.io import atomic_path, write_parquet, write_text


def test_failure_keeps_previous_output_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text("complete", target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_outputs_get_ordinary_permissions(tmp_path):
    write_text("x", tmp_path / "out.txt")
    mode = stat.S_IMODE((tmp_path / "out.txt").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_a_killed_writers_temporaries_are_removed_by_the_next_write(tmp_path):
    """kill -9 skips the cleanup: the next write of the same output removes what was left,
    and only that output's temporaries (another output's in the same folder stay)."""
    left = tmp_path / ".shard0.k3j2h1g0.tmp.npz"
    other = tmp_path / ".shard0.x.k3j2h1g0.tmp.npz"  # output shard0.x.npz, still being written
    left.write_bytes(b"half a file")
    other.write_bytes(b"another job")
    with atomic_path(tmp_path / "shard0.npz") as tmp:
        tmp.write_bytes(b"done")
    assert not left.exists() and other.exists()
    assert (tmp_path / "shard0.npz").read_bytes() == b"done"


def test_a_full_disk_is_a_one_line_write_error_naming_the_output(tmp_path):
    """ENOSPC (or a quota, a read-only mount) while writing: WriteError "cannot write <output>:
    <cause>", no temporary left; other OSErrors (an unreadable input) pass unchanged."""
    import errno

    from debatch.core.io import WriteError

    target = tmp_path / "crops.npy"
    with pytest.raises(WriteError, match=f"^cannot write {target}: No space left on device$"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            (tmp_path / "missing.tiff").read_bytes()
    assert os.listdir(tmp_path) == []


def test_a_memory_mapped_output_reserves_its_disk_space(tmp_path):
    """open_npy allocates every block up front (no sparse file whose pages fail with SIGBUS
    when the disk fills) and is an ordinary writable .npy."""
    import numpy as np

    from debatch.core.io import open_npy

    array = open_npy(tmp_path / "a.npy", np.float16, (64, 5, 32, 32))
    size = (tmp_path / "a.npy").stat()
    assert size.st_blocks * 512 >= size.st_size  # before a single crop was written
    array[:] = 1
    del array
    assert (np.load(tmp_path / "a.npy") == 1).all()


def test_parquet_float_columns_are_plain_encoded_and_labels_keep_their_dictionary(tmp_path):
    """Measured floats are nearly all distinct: a dictionary only slows every later read."""
    table = pd.DataFrame(
        {
            "Metadata_Well": ["A01", "A02"] * 50,
            "Metadata_Site": np.arange(100) % 4,
            "Cells_AreaShape_Area": np.linspace(0, 1, 100, dtype=np.float32),
            "emb_000": np.linspace(0, 1, 100),
        }
    )
    write_parquet(table, tmp_path / "cells.parquet")
    chunks = pq.ParquetFile(tmp_path / "cells.parquet").metadata.row_group(0)
    encodings = {
        chunks.column(i).path_in_schema: chunks.column(i).encodings
        for i in range(chunks.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["Metadata_Well"]
    assert "RLE_DICTIONARY" in encodings["Metadata_Site"]
    assert "RLE_DICTIONARY" not in encodings["Cells_AreaShape_Area"]
    assert "RLE_DICTIONARY" not in encodings["emb_000"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cells.parquet"), table)


def test_parquet_float_columns_are_required_with_nan_a_value_and_read_back_equal(tmp_path):
    """A required column stores no definition levels (half the read time); pandas' NaN, which
    Arrow's conversion makes a null, is written as the value NaN (CellProfiler's "not
    measurable"), so every float column is required. Labels keep their nulls."""
    table = pd.DataFrame(
        {
            "Metadata_Well": ["A01", None, "B01"],
            "emb_000": np.array([0.5, 0.25, -1.0], np.float32),
            "Nuclei_Texture_Contrast": [1.0, np.nan, 2.0],
        }
    )
    write_parquet(table, tmp_path / "cells.parquet", {"rule": "test"})
    schema = pq.read_schema(tmp_path / "cells.parquet")
    assert not schema.field("emb_000").nullable
    assert not schema.field("Nuclei_Texture_Contrast").nullable
    assert schema.field("Metadata_Well").nullable
    assert {b"debatch", b"pandas"} <= set(schema.metadata)  # provenance and pandas' dtypes kept
    contrast = pq.read_table(tmp_path / "cells.parquet").column("Nuclei_Texture_Contrast")
    assert contrast.null_count == 0 and np.isnan(contrast.to_numpy()[1])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cells.parquet"), table)


def test_a_streamed_parquet_file_is_laid_out_by_its_rows_not_by_how_they_came(
    tmp_path, monkeypatch
):
    """ParquetStream writes row groups of a fixed number of rows (ROW_GROUP_BYTES of values)
    whatever blocks the rows come in, so a table streamed a site at a time, by shards or whole
    is the same file; nothing is committed when the writer fails half-way."""
    import pyarrow as pa

    from debatch.core import io

    monkeypatch.setattr(io, "ROW_GROUP_BYTES", 10 * (8 + 4 * 3))  # 10 rows of these columns
    rng = np.random.default_rng(0)
    values = rng.normal(size=(47, 3)).astype(np.float32)
    values[rng.random(values.shape) < 0.1] = np.nan
    table = pd.DataFrame(values, columns=["a", "b", "c"]).assign(Metadata_Site=np.arange(47))[
        ["Metadata_Site", "a", "b", "c"]
    ]
    write_parquet(table, tmp_path / "whole.parquet", {"rule": "test"})
    schema = pa.Schema.from_pandas(table.head(0), preserve_index=False)
    with io.ParquetStream(tmp_path / "sites.parquet", schema, {"rule": "test"}) as stream:
        for first, last in [(0, 3), (3, 4), (4, 25), (25, 25), (25, 47)]:  # sites, one empty
            stream.write(table.iloc[first:last])
    assert stream.rows == 47
    files = [pq.ParquetFile(tmp_path / name) for name in ("whole.parquet", "sites.parquet")]
    for file in files:
        groups = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
        assert groups == [10, 10, 10, 10, 7]
        assert file.schema_arrow.equals(files[0].schema_arrow, check_metadata=True)
        pd.testing.assert_frame_equal(file.read().to_pandas(), table)
    with pytest.raises(RuntimeError):
        with io.ParquetStream(tmp_path / "failed.parquet", schema) as stream:
            stream.write(table)  # four row groups on disk already
            raise RuntimeError("killed")
    with pytest.raises(pa.ArrowInvalid):  # rows that do not fit, found as the last group is cut
        with io.ParquetStream(tmp_path / "unfit.parquet", schema) as stream:
            stream.write(table.head(3).assign(a="text"))
    assert sorted(os.listdir(tmp_path)) == ["sites.parquet", "whole.parquet"]
