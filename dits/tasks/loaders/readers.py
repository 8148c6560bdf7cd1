"""The published file formats, read with real parsers, and a record's fields, checked.

Every failure is one ``DitsError`` line naming the file, the record (index, line, row or id) and
the field. Stricter than the Hub loading scripts on purpose: they index ``data[5]`` of a CSV row
without counting its columns, or cut a GSM8K answer at ``####`` whether or not it is there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dits.errors import DitsError


def json_document(file: Path) -> object:
    """Return the parsed JSON document ``file``; a truncated file names where parsing stopped."""
    try:
        return json.loads(_text(file))
    except json.JSONDecodeError as exc:
        raise DitsError(
            f"{file}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "expected one complete JSON document (is the file truncated?)"
        ) from None


def json_lines(file: Path) -> list[tuple[int, dict[str, object]]]:
    """Return (0-based line index, object) for every line of the JSON Lines file ``file``.

    ``json`` line by line rather than polars' reader: a broken line is then named by its line
    number, where polars reports only that the file failed.
    """
    rows = []
    for index, line in enumerate(_text(file).splitlines()):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DitsError(
                f"{file}: line {index + 1}: not valid JSON ({exc.msg}); expected one object"
            ) from None
        rows.append((index, obj(row, f"{file}: line {index + 1}")))
    return rows


def csv_rows(file: Path, names: list[str]) -> list[dict[str, str]]:
    """Return the rows of the header-less CSV file ``file`` as ``names`` -> field.

    pyarrow's parser: quoted fields keep their commas, ``|``, newlines and doubled quotes. A
    row with another number of fields stops the read, named by its row number from 1 (rows,
    not lines: a quoted field may span lines).
    """
    ragged: list[tuple[int, int]] = []

    def note(row: pa_csv.InvalidRow) -> str:
        ragged.append((row.number, row.actual_columns))
        return "skip"

    try:
        table = pa_csv.read_csv(
            file,
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=note),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DitsError(f"{file}: not valid CSV ({_first_line(exc)})") from None
    if ragged:
        row, found = ragged[0]
        raise DitsError(
            f"{file}: row {row}: expected {len(names)} columns ({', '.join(names)}), found {found}"
        )
    return table.to_pylist()


def parquet_rows(file: Path, columns: list[str]) -> list[dict[str, object]]:
    """Return the rows of Parquet file ``file`` as column -> value for ``columns``.

    A column is a dotted path into structs (``answer.aliases``), so only the fields the record
    needs are read: TriviaQA's snapshot also holds every evidence document in full.
    """
    schema = _schema(file)
    for column in columns:
        if not _has(schema, column):
            raise DitsError(f"{file}: column {column} missing; expected {', '.join(columns)}")
    table = pq.read_table(file, columns=columns)
    values = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def parquet_has(file: Path, column: str) -> bool:
    """Return whether Parquet file ``file`` has ``column`` (a dotted path into structs)."""
    return _has(_schema(file), column)


def obj(value: object, where: str) -> dict[str, object]:
    """Return ``value`` as a JSON object, else the error naming ``where``."""
    if not isinstance(value, dict):
        raise DitsError(f"{where}: {type(value).__name__}; expected a JSON object")
    return value


def member(record: dict[str, object], key: str, where: str) -> dict[str, object]:
    """Return the object field ``key`` of ``record``; missing, null or another type is an error."""
    value = _field(record, key, where)
    if not isinstance(value, dict):
        raise DitsError(f"{where}: {key} = {_show(value)}; expected an object")
    return value


def text(record: dict[str, object], key: str, where: str) -> str:
    """Return the string field ``key`` of ``record``; missing, null or another type is an error."""
    value = _field(record, key, where)
    if not isinstance(value, str):
        raise DitsError(f"{where}: {key} = {_show(value)}; expected a string")
    return value


def items(record: dict[str, object], key: str, where: str) -> list[object]:
    """Return the list field ``key`` of ``record``; missing, null or another type is an error."""
    value = _field(record, key, where)
    if not isinstance(value, list):
        raise DitsError(f"{where}: {key} = {_show(value)}; expected a list")
    return value


def strings(record: dict[str, object], key: str, where: str) -> list[str]:
    """Return the list-of-strings field ``key`` of ``record``."""
    checked = []
    for i, value in enumerate(items(record, key, where)):
        if not isinstance(value, str):
            raise DitsError(f"{where}: {key}[{i}] = {_show(value)}; expected a string")
        checked.append(value)
    return checked


def _field(record: dict[str, object], key: str, where: str) -> object:
    if record.get(key) is None:
        raise DitsError(f"{where}: {key}: missing")
    return record[key]


def _text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DitsError(f"{file}: not UTF-8 text") from None


def _has(schema: pa.Schema, column: str) -> bool:
    head, *rest = column.split(".")
    if schema.get_field_index(head) < 0:
        return False
    kind = schema.field(head).type
    for name in rest:
        if not pa.types.is_struct(kind) or kind.get_field_index(name) < 0:
            return False
        kind = kind.field(name).type
    return True


def _show(value: object) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _schema(file: Path) -> pa.Schema:
    try:
        return pq.read_schema(file)
    except (pa.ArrowException, OSError) as exc:
        raise DitsError(f"{file}: not a readable Parquet file ({_first_line(exc)})") from None
