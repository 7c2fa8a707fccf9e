"""The ``score`` output: part files per mini-batch attempt, assembled once into ``output_file_name``.

Exactly once: a worker writes an attempt's rows to ``<part>.tmp`` and renames it to ``<part>`` before it answers;
each attempt has its own part name, and the engine records the one part it accepted per mini-batch (or per file,
when a mini-batch was scored file by file). Parts of attempts that were killed, timed out or failed are never
read. The final file is the accepted parts in mini-batch order, written under a temporary name and renamed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PARTS = ".mlyard-parts"  # hidden: the output folder is also what a summary_only script writes into
COPY_CHUNK = 1 << 20


class Parts:
    """The part files of one run, in ``<output>/.mlyard-parts`` (same file system: renames are atomic)."""

    def __init__(self, output: Path) -> None:
        self.folder = output / PARTS
        self.accepted: dict[tuple[int, int], str] = {}

    def create(self) -> None:
        """Start empty (a killed earlier run may have left parts behind)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def name(self, index: int, sub: int | None, task: int) -> str:
        """The part path of one attempt: mini-batch ``index``, file ``sub`` when isolating, attempt ``task``."""
        which = "all" if sub is None else f"{sub:05d}"
        return str(self.folder / f"{index:08d}-{which}-{task}.csv")

    def accept(self, index: int, sub: int | None, part: str) -> None:
        """Record the part of the attempt that succeeded."""
        if not os.path.exists(part):
            raise FileNotFoundError(f"the worker reported success but its part file {part} is missing")
        self.accepted[(index, -1 if sub is None else sub)] = part

    def assemble(self, target: Path) -> int:
        """Concatenate the accepted parts, in order, into ``target`` atomically; return its size in bytes."""
        temporary = target.with_name(f".{target.name}.tmp")
        with temporary.open("wb") as out:
            for key in sorted(self.accepted):
                with open(self.accepted[key], "rb") as part:
                    shutil.copyfileobj(part, out, COPY_CHUNK)
            size = out.tell()
        os.replace(temporary, target)
        return size

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
