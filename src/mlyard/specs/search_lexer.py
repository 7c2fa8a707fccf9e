"""Split an MLflow search filter into raw clauses, the way MLflow's own server does.

MLflow has no grammar for its filters: it runs them through ``sqlparse`` (a SQL lexer and token
grouper) and inspects the tokens. To accept what MLflow accepts, this module ports the part of
that machinery filters reach: sqlparse's token regexes (in their order, with their flags) and the
groupings MLflow relies on (parentheses, dotted identifiers, a trailing ``ASC``/``DESC``,
comparisons, ``IN``/``NOT IN``/``IS [NOT] NULL``). Identifier text is kept verbatim, because
MLflow splits it on its first ``.`` and strips quotes from the raw text; ``filters.py`` does that.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal[
    "ws", "comment", "name", "word", "symbol", "string", "int", "float", "cmp", "keyword",
    "not_null", "order", "wildcard", "punct", "op", "other", "paren",
]  # fmt: skip
ValueKind = Literal["string", "ident", "int", "float", "list", "other"]


# MLflow sets no bound; its server fails (a recursion error, SQLite's "expression tree is too large") somewhere
# short of a thousand. A hundred conditions is far more than a search needs and far from any store's limit.
MAX_CLAUSES = 100


class FilterError(ValueError):
    """A filter or order_by clause MLflow's server refuses with INVALID_PARAMETER_VALUE."""

    def __init__(self, message: str) -> None:
        if len(message) > 1000:  # it quotes the filter, which can be megabytes: keep both ends
            message = f"{message[:600]} [...] {message[-300:]}"
        super().__init__(message)


# sqlparse's SQL_REGEX in its order, reduced to the token kinds filters care about.
# "word" is sqlparse's PROCESS_AS_KEYWORD: a keyword when listed in _KEYWORDS, a name otherwise.
_PATTERNS: list[tuple[str, TokenKind]] = [
    (r"(--|# ).*?(\r\n|\r|\n|$)", "comment"),
    (r"\s+", "ws"),
    (r":=|::", "other"),
    (r"\*", "wildcard"),
    (r"`(``|[^`])*`|´(´´|[^´])*´", "name"),
    (r"\?|%(\(\w+\))?s|(?<!\w)[$:?]\w+|\\\w+", "other"),
    (r"(CASE|IN|VALUES|USING|FROM|AS)\b", "keyword"),
    (r"(@|##|#)[A-ZÀ-Ü]\w+", "name"),
    (r"[A-ZÀ-Ü]\w*(?=\s*\.(?!\d))|(?<=\.)[A-ZÀ-Ü]\w*|[A-ZÀ-Ü]\w*(?=\()", "name"),
    (r"-?0x[\dA-F]+", "other"),
    (r"-?\d+(\.\d+)?E-?\d+", "float"),
    (r"(?![_A-ZÀ-Ü])-?(\d+(\.\d*)|\.\d+)(?![_A-ZÀ-Ü])", "float"),
    (r"(?![_A-ZÀ-Ü])-?\d+(?![_A-ZÀ-Ü])", "int"),
    (r"'(''|\\'|[^'])*'", "string"),
    (r'"(""|\\"|[^"])*"|(""|".*?[^\\]")', "symbol"),
    (r"(?<![\w\])])(\[[^\]\[]+\])", "name"),
    (r"NOT\s+NULL\b", "not_null"),
    (r"(ASC|DESC)(\s+NULLS\s+(FIRST|LAST))?\b|NULLS\s+(FIRST|LAST)\b", "order"),
    (r"(NOT\s+)?(LIKE|ILIKE|RLIKE)\b|(NOT\s+)?(REGEXP)(\s+(BINARY))?\b", "cmp"),
    (r"\w[$#\w]*", "word"),
    (r"[;:()\[\],.]", "punct"),
    (r"->>?|#>>?|@>|<@|\?\|?|\?&|-|#-", "op"),
    (r"[<>=~!]+", "cmp"),
    (r"[+/@#%^&|-]+", "op"),
]
_RULES = [(re.compile(pattern, re.IGNORECASE | re.UNICODE), kind) for pattern, kind in _PATTERNS]
# The sqlparse keywords that change how a filter groups; any other SQL keyword is refused anyway.
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IS", "NULL"})


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class RawValue:
    """The right-hand side of a clause: what kind of token it was and its verbatim text."""

    kind: ValueKind
    text: str


@dataclass(frozen=True)
class RawClause:
    """One ``<identifier> <comparator> [<value>]`` clause, every part verbatim."""

    identifier: str
    comparator: str  # as typed, except the synthesised "NOT IN", "IS NULL" and "IS NOT NULL"
    value: RawValue | None
    text: str


def tokenize(text: str) -> list[Token]:
    """Lex ``text`` like sqlparse, then group balanced parentheses into single ``paren`` tokens."""
    tokens: list[Token] = []
    opens: list[int] = []
    pos = 0
    while pos < len(text):
        kind: TokenKind = "other"
        end = pos + 1
        for pattern, rule_kind in _RULES:
            if m := pattern.match(text, pos):
                kind, end = rule_kind, m.end()
                break
        if kind == "word":
            kind = "keyword" if text[pos:end].upper() in _KEYWORDS else "name"
        if kind == "punct" and text[pos] == ")" and opens:
            first = opens.pop()
            pos = tokens[first].start
            del tokens[first:]
            kind = "paren"
        elif kind == "punct" and text[pos] == "(":
            opens.append(len(tokens))
        tokens.append(Token(kind, text[pos:end], pos, end))
        pos = end
    return tokens


class _Cursor:
    """Walks the tokens of one filter or order_by clause, skipping whitespace between tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def _next(self, i: int) -> int:
        while i < len(self.toks) and self.toks[i].kind == "ws":
            i += 1
        return i

    def peek(self) -> Token | None:
        j = self._next(self.i)
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> Token:
        j = self._next(self.i)
        self.i = j + 1
        return self.toks[j]

    def at(self, kind: TokenKind, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == kind and (not words or tok.text.upper() in words)

    def _is_call(self) -> bool:
        """sqlparse groups a name followed by parentheses as a function call."""
        j = self._next(self._next(self.i) + 1)
        return self.at("name") and j < len(self.toks) and self.toks[j].kind == "paren"

    def identifier(self) -> str | None:
        """The verbatim text of the dotted identifier (sqlparse's ``Identifier``) starting here."""
        if not (self.at("name") or self.at("symbol")) or self._is_call():
            return None
        first = self.take()
        start, end = first.start, first.end
        while self.at("punct", "."):
            end = self.take().end
            if self.at("name") or self.at("symbol") or self.at("string") or self.at("wildcard"):
                call = self._is_call()
                end = self.take().end
                if call:
                    end = self.take().end  # `metrics.f1(macro)`: the call is part of the key
        while self.at("order"):  # sqlparse folds a trailing ASC/DESC into the identifier
            end = self.take().end
        return self.text[start:end]

    def value(self) -> RawValue | None:
        if (ident := self.identifier()) is not None:
            return RawValue("ident", ident)
        kinds: dict[TokenKind, ValueKind] = {"string": "string", "int": "int", "float": "float", "paren": "list"}
        tok = self.peek()
        if tok is not None and (tok.kind in kinds or (tok.kind == "keyword" and tok.text.upper() == "NULL")):
            self.take()
            return RawValue(kinds.get(tok.kind, "other"), tok.text)
        return None

    def end(self) -> int:
        """Where the last token taken ends."""
        return self.toks[self.i - 1].end


def split_clauses(text: str, operations: bool = False) -> list[RawClause]:
    """The clauses of a filter in order; the ``AND`` between them is dropped (and, as in MLflow, optional).

    With ``operations``, the left side may be an arithmetic-looking run such as ``metrics.val-loss``
    (search_logged_models reads it as text where the other searches refuse it).

    Raises:
        FilterError: the filter holds something other than clauses joined by ``AND``.
    """
    if text and not text.strip():  # sqlparse finds no statement in it, which MLflow refuses
        raise FilterError(f"Invalid filter {text!r}: it is blank; send no filter to match everything")
    cur = _Cursor(text)
    clauses: list[RawClause] = []
    after_value = False  # sqlparse glues `<value> <identifier>` into garbage unless a comparison follows
    while (tok := cur.peek()) is not None:
        if tok.kind == "keyword" and tok.text.upper() in ("AND", "OR"):
            if tok.text.upper() == "OR":
                raise FilterError(
                    f"Invalid filter {text!r}: OR is not supported; MLflow filters join conditions with AND"
                )
            cur.take()
            after_value = False
            continue
        clause = _clause(cur, operations)
        if clause is None:
            raise FilterError(
                f"Invalid filter {text!r}: unexpected {tok.text!r} at character {tok.start + 1}; expected conditions "
                "like `metrics.acc > 0.9` or `params.lr = '0.01'` joined by AND"
            )
        if after_value and clause.comparator.upper() in ("IN", "NOT IN", "IS NULL", "IS NOT NULL"):
            raise FilterError(f"Invalid filter {text!r}: put AND before {clause.text!r}")
        after_value = clause.value is not None
        clauses.append(clause)
        if len(clauses) > MAX_CLAUSES:
            raise FilterError(f"Invalid filter {text[:80]!r}...: it joins more than {MAX_CLAUSES} conditions; "
                              f"use at most {MAX_CLAUSES}")
    return clauses


def _clause(cur: _Cursor, operations: bool) -> RawClause | None:
    start = cur.peek()
    if start is None or cur.identifier() is None:
        return None
    while operations and (cur.at("op") or cur.at("wildcard")):
        cur.take()
        if cur.value() is None:
            return None
    if cur.at("name") or cur.at("symbol"):  # two identifiers in a row are one to sqlparse (an "alias")
        if cur.identifier() is None or cur.at("cmp"):
            return None
    ident = cur.text[start.start : cur.end()]
    value: RawValue | None = None
    if cur.at("keyword", "IS"):
        cur.take()
        if cur.at("keyword", "NULL"):
            comparator = "IS NULL"
        elif cur.at("not_null", "NOT NULL"):  # the raw token: MLflow refuses `IS NOT  NULL` (two spaces)
            comparator = "IS NOT NULL"
        else:
            return None
        cur.take()
    elif cur.at("keyword", "IN", "NOT"):
        comparator = cur.take().text
        if comparator.upper() == "NOT":
            if not cur.at("keyword", "IN"):
                return None
            cur.take()
            comparator = "NOT IN"
        if not cur.at("paren"):
            return None
        value = RawValue("list", cur.take().text)
    elif cur.at("cmp"):
        comparator = cur.take().text
        if (value := cur.value()) is None:
            return None
    else:
        return None
    return RawClause(ident, comparator, value, cur.text[start.start : cur.end()])


def split_order_by(text: str) -> tuple[str, bool]:
    """The key text and direction of one order_by clause (``metrics.acc DESC``), as MLflow reads them.

    MLflow wants the clause to parse as one identifier (so no surrounding whitespace), then splits
    it with shell rules after turning backticks into double quotes.

    Raises:
        FilterError: the clause is not ``<key>``, ``<key> ASC`` or ``<key> DESC``.
    """
    invalid = FilterError(f"Invalid order_by clause {text!r}: expected `<key>`, `<key> ASC` or `<key> DESC`")
    cur = _Cursor(text)
    if not cur.toks or "ws" in (cur.toks[0].kind, cur.toks[-1].kind):
        raise invalid
    while cur.peek() is not None:  # identifiers in a row are one identifier (an "alias") to sqlparse
        if cur.identifier() is None:
            raise invalid
    try:
        words = shlex.split(text.replace("`", '"'))
    except ValueError as exc:  # unbalanced quotes: MLflow fails with a server error
        raise invalid from exc
    if len(words) > 2:
        raise invalid
    if len(words) < 2:
        return text, True
    if words[1].lower() not in ("asc", "desc"):
        raise FilterError(f"Invalid order_by clause {text!r}: direction {words[1]!r} must be ASC or DESC")
    return words[0], words[1].lower() == "asc"
