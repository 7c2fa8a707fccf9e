"""Size limits on specs, in one place (docs/specs.md lists them).

A spec is a small document written by a person. These bounds sit far above any real Azure ML file
and far below what would hurt the process reading it: a few hundred bytes of nested YAML aliases
("billion laughs") expand to billions of nodes, and thousands of nested brackets exhaust Python's
recursion. Each limit is checked before the document is built, and breaking one is an
``InvalidSpecError`` naming the file (and the line, where there is one).
"""

from __future__ import annotations

MAX_SPEC_BYTES = 4 * 1024 * 1024
"""Largest spec file (and largest conda file or other YAML a spec names) mlyard reads."""

MAX_NODES = 100_000
"""Most values (mappings, lists and scalars, aliases counted each time they are used) in one document."""

MAX_DEPTH = 100
"""Deepest nesting of mappings and lists in one document."""

MAX_TEXT_CHARS = 65_536
"""Longest text value anywhere in a spec (a description, a command, a path)."""

MAX_TAG_KEY_CHARS = 250
"""Longest tag or property key (MLflow's limit, since job tags become run tags)."""

MAX_TAG_VALUE_CHARS = 8_000
"""Longest tag or property value (MLflow's limit)."""
