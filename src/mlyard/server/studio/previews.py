"""What a file looks like on a page: text, pretty JSON, a table of a CSV's (or Parquet's) first rows, an image."""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass, field
from typing import BinaryIO

PREVIEW_BYTES = 256 * 1024
PREVIEW_ROWS = 50
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".svg": "image/svg+xml", ".webp": "image/webp"}
TEXT = {".txt", ".log", ".md", ".yaml", ".yml", ".py", ".toml", ".cfg", ".ini", ".sh", ".html", ".xml"}
TEXT_NAMES = {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "Dockerfile", "LICENSE"}


@dataclass
class Preview:
    kind: str  # text, json, table, image, binary, none
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    media_type: str = ""


def kind_of(name: str) -> str:
    ext = posixpath.splitext(name)[1].lower()
    base = posixpath.basename(name)
    if ext in IMAGES:
        return "image"
    if ext == ".json":
        return "json"
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext == ".parquet":
        return "parquet"
    if ext in TEXT or base in TEXT_NAMES:
        return "text"
    return "unknown"


def preview(name: str, stream: BinaryIO) -> Preview:
    kind = kind_of(name)
    if kind == "image":
        return Preview("image", media_type=IMAGES[posixpath.splitext(name)[1].lower()])
    if kind == "parquet":
        return _parquet(stream)
    data = stream.read(PREVIEW_BYTES + 1)
    truncated = len(data) > PREVIEW_BYTES
    data = data[:PREVIEW_BYTES]
    if kind == "csv":
        return _csv(data, "\t" if name.lower().endswith(".tsv") else ",")
    if b"\x00" in data[:4096]:
        return Preview("binary")
    text = data.decode(errors="replace")
    if kind == "json" and not truncated:
        try:
            return Preview("json", text=json.dumps(json.loads(text), indent=2, ensure_ascii=False))
        except ValueError:
            pass
    return Preview("text", text=text, truncated=truncated)


def _csv(data: bytes, delimiter: str) -> Preview:
    reader = csv.reader(io.StringIO(data.decode(errors="replace")), delimiter=delimiter)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
            if len(rows) > PREVIEW_ROWS:
                break
    except csv.Error:
        pass
    if not rows:
        return Preview("text", text="(empty)")
    return Preview("table", header=rows[0], rows=rows[1:PREVIEW_ROWS + 1], truncated=len(rows) > PREVIEW_ROWS)


def _parquet(stream: BinaryIO) -> Preview:
    try:
        import pyarrow.parquet as pq  # the ml/monitoring extras' reader; optional for the server
    except ImportError:
        return Preview("text", text="(a Parquet preview needs pyarrow: pip install 'mlyard[ml]')")
    try:
        table = pq.ParquetFile(io.BytesIO(stream.read())).read_row_group(0).slice(0, PREVIEW_ROWS)  # type: ignore[no-untyped-call]
    except Exception as exc:  # a broken file is shown as such, never a server error
        return Preview("text", text=f"(could not read this Parquet file: {exc})")
    columns = table.column_names
    data = table.to_pydict()
    rows = [[str(data[c][i]) for c in columns] for i in range(table.num_rows)]
    return Preview("table", header=columns, rows=rows)
