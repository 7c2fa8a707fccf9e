"""The input's files and their mini-batches.

A folder contributes the files directly in it, sorted by name; hidden files (``.name``) are skipped and nested
folders are not explored (Azure's MLflow batch doc says so; mlyard applies it to scoring scripts too). A file input
is one file. No-code scoring checks every file's type before any worker starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlyard.serving.batch.tables import IMAGES, TABULAR

LISTED = 10  # files named in a message before "and N more"


class InputError(Exception):
    """The input cannot be scored as given; the message names the files and what to do."""


@dataclass(frozen=True, slots=True)
class Listing:
    """The files to score (absolute paths) and what was left out."""

    files: list[str]
    skipped_folders: int = 0
    skipped_hidden: int = 0


def list_files(path: Path) -> Listing:
    """The files of ``path`` (a file or a folder), sorted by name."""
    if path.is_file():
        return Listing([str(path.resolve())])
    if not path.is_dir():
        raise InputError(f"the input {path} does not exist: give a file or a folder of files")
    files: list[str] = []
    folders = hidden = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                hidden += 1
            elif entry.is_dir():
                folders += 1
            elif entry.is_file():
                files.append(entry.name)
    root = path.resolve()
    return Listing([str(root / name) for name in sorted(files)], folders, hidden)


def check_nocode_types(files: Sequence[str]) -> None:
    """Refuse the files MLflow no-code scoring cannot read, before any work (Azure's message shape).

    Raises:
        InputError: ``File type 'avro' is not supported: data/x.avro; ...`` with what to do.
    """
    refused: dict[str, list[str]] = {}
    images: list[str] = []
    for file in files:
        suffix = Path(file).suffix.lower()
        if suffix in TABULAR:
            continue
        if suffix in IMAGES:
            images.append(file)
        else:
            refused.setdefault(suffix.lstrip(".") or "(none)", []).append(file)
    parts = [f"File type '{kind}' is not supported: {name_some(paths)}" for kind, paths in refused.items()]
    if images:
        parts.append(f"image files are not supported by mlyard's no-code scoring yet: {name_some(images)}")
    if parts:
        raise InputError("; ".join(parts) + ". No-code MLflow batch scoring reads .csv, .parquet and .pqt files: "
                         "remove the other files from the input, convert them, or score them with a scoring script "
                         "(code_configuration).")


def name_some(items: Sequence[str], limit: int = LISTED) -> str:
    """``a, b, c`` or ``a, ... j and 5 more``."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def mini_batches(files: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """``files`` cut into mini-batches of ``size`` files, in order."""
    return [tuple(files[start:start + size]) for start in range(0, len(files), size)]
