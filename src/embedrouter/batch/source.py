"""Read a job's input file (jsonl, csv or parquet) and check its text column.

The whole file is read into one Arrow table: pyarrow's readers are columnar and multi-threaded,
and the vectors the job produces are larger than the texts anyway (384 float32 = 1.5 kB a row).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedrouter.batch.errors import BatchError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
           ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True, slots=True)
class Source:
    """The rows of the input: the texts to embed, and the columns the output keeps."""

    texts: list[str]
    kept: Any  # pyarrow.Table of the id columns, row-aligned with ``texts``

    def __len__(self) -> int:
        return len(self.texts)


def _read_table(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BatchError(f"{path}: unknown input format {path.suffix!r}; expected one of "
                         f"{', '.join(sorted(FORMATS))}")
    if not path.is_file():
        raise BatchError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return pq.read_table(path)
        if kind == "csv":
            # Every column as a string: an id such as 00042 must come out as it went in.
            with pcsv.open_csv(path) as reader:  # reads the first block only, for the names
                names = reader.schema.names
            return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False))
        return pjson.read_json(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise BatchError(f"{path}: cannot read it as {kind}: {exc}") from None


def read_source(path: Path, column: str, id_columns: list[str] | None = None,
                keep_text: bool = False, vector_column: str = "embedding") -> Source:
    """The texts of ``column`` (each a non-empty string) and the columns to keep beside them:
    ``id_columns`` when given, else every other column."""
    import pyarrow as pa

    table = _read_table(path)
    names = table.column_names
    if column not in names:
        raise BatchError(f"{path}: no column {column!r}; the columns are {', '.join(names)}")
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise BatchError(f"{path}: column {column!r} holds {col.type}, not text")
    texts = col.to_pylist()
    for i, text in enumerate(texts):
        if not text:
            what = "is empty" if text == "" else "has no value"
            raise BatchError(f"{path}: row {i} ({column!r}) {what}; every row needs a text")
    if id_columns is None:
        keep = [n for n in names if n != column]
    else:
        missing = [n for n in id_columns if n not in names]
        if missing:
            raise BatchError(f"{path}: no column {missing[0]!r}; the columns are "
                             f"{', '.join(names)}")
        keep = list(dict.fromkeys(id_columns))
    if keep_text and column not in keep:
        keep.append(column)
    if vector_column in keep:
        raise BatchError(f"{path}: column {vector_column!r} would be overwritten by the vectors; "
                         "choose the kept columns with --id-column")
    return Source(texts=texts, kept=table.select(keep))
