"""The slice of JQL the Jira emulator understands, parsed without I/O (reference: apis-storage-dev.md §6).

Grammar (keywords case-insensitive)::

    query   := [clause (AND clause)*] [ORDER BY field [ASC|DESC] (, field [ASC|DESC])*]
    clause  := field op value | field IN (value, ...)
    field   := project | updated | created | key | issuekey | id | status | labels | issuetype
    op      := = | != | >= | > | <= | <
    value   := "quoted" | 'quoted' | bare word

Dates (``updated``, ``created``) take the documented formats ``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd HH:mm``,
``yyyy/MM/dd``, ``yyyy-MM-dd`` in the caller's time zone, or relative ``-15m``, ``-2h``, ``-1d``, ``-1w``.
A query without any restriction is refused, as ``/search/jql`` requires bounded JQL.

Errors: :class:`JqlError` with Jira's own wording (it becomes a 400 ``errorMessages`` body).

>>> q = parse('project = DEMO AND updated >= "2026-01-31 14:05" ORDER BY updated ASC', tz=timezone.utc, now=0)
>>> q.order, q.clauses[1].value
([('updated', False)], 1769868300.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

FIELDS = {"project", "updated", "created", "key", "issuekey", "id", "status", "labels", "issuetype"}
DATE_FIELDS = {"updated", "created"}
SORTABLE = {"updated", "created", "key", "issuekey", "id"}
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!=|>=|<=|=|>|<|\(|\)|,)'
                    r'|(?P<word>[^\s=!<>(),"\']+))')
_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_RELATIVE = re.compile(r"^([-+]?)(\d+)([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class JqlError(ValueError):
    """A query Jira would refuse; the message is Jira's."""


@dataclass(frozen=True)
class Clause:
    field: str
    op: str                     # =, !=, >=, >, <=, <, in
    value: Any                  # str, float (dates), or a tuple for IN


@dataclass
class Query:
    clauses: list[Clause] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)     # (field, descending)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: The character '{text[pos]}' is a reserved JQL character.")
        out.append(m.group(0).strip())
        pos = m.end()
    return [t for t in out if t]


def _unquote(token: str) -> str:
    if token[:1] in "\"'" and token[-1:] == token[:1] and len(token) >= 2:
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def parse_date(text: str, name: str, *, tz: tzinfo, now: float) -> float:
    """A JQL date in the caller's time zone, as epoch seconds."""
    rel = _RELATIVE.match(text.strip())
    if rel:
        sign = 1 if rel.group(1) == "+" else -1
        return now + sign * int(rel.group(2)) * _UNITS[rel.group(3)]
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=tz).timestamp()
        except ValueError:
            continue
    raise JqlError(f"Date value '{text}' for field '{name}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
                   "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


def parse(text: str, *, tz: tzinfo, now: float) -> Query:
    """Parse ``text`` (module docstring); raises JqlError."""
    tokens = _tokens(text or "")
    query, i = Query(), 0
    while i < len(tokens) and not (tokens[i].lower() == "order" and i + 1 < len(tokens)
                                   and tokens[i + 1].lower() == "by"):
        if query.clauses:
            if tokens[i].lower() != "and":
                raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{tokens[i]}'.")
            i += 1
        clause, i = _clause(tokens, i, tz=tz, now=now)
        query.clauses.append(clause)
    if i < len(tokens):
        query.order, i = _order(tokens, i + 2)
    if not query.clauses:
        raise JqlError("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
    return query


def _clause(tokens: list[str], i: int, *, tz: tzinfo, now: float) -> tuple[Clause, int]:
    if i + 2 > len(tokens):
        raise JqlError("Error in the JQL Query: Expecting operator before the end of the query.")
    name = tokens[i].lower()
    if name not in FIELDS:
        raise JqlError(f"Field '{tokens[i]}' does not exist or you do not have permission to view it.")
    name = "key" if name == "issuekey" else name
    op = tokens[i + 1].lower()
    if op == "in":
        if i + 2 >= len(tokens) or tokens[i + 2] != "(":
            raise JqlError("Error in the JQL Query: Expecting '(' but got the end of the query.")
        values, j = [], i + 3
        while j < len(tokens) and tokens[j] != ")":
            if tokens[j] != ",":
                values.append(_unquote(tokens[j]))
            j += 1
        if j >= len(tokens) or not values:
            raise JqlError("Error in the JQL Query: Expecting ')' before the end of the query.")
        return Clause(name, "in", tuple(values)), j + 1
    if op not in ("=", "!=", ">=", ">", "<=", "<") or i + 2 >= len(tokens):
        raise JqlError(f"Error in the JQL Query: Expecting operator but got '{tokens[i + 1]}'.")
    raw = _unquote(tokens[i + 2])
    if name in DATE_FIELDS:
        return Clause(name, op, parse_date(raw, name, tz=tz, now=now)), i + 3
    if op not in ("=", "!="):
        raise JqlError(f"The operator '{op}' is not supported by the '{name}' field.")
    return Clause(name, op, raw), i + 3


def _order(tokens: list[str], i: int) -> tuple[list[tuple[str, bool]], int]:
    order: list[tuple[str, bool]] = []
    while i < len(tokens):
        name = tokens[i].lower()
        if name not in SORTABLE:
            raise JqlError(f"Not able to sort using field '{tokens[i]}'.")
        descending, i = False, i + 1
        if i < len(tokens) and tokens[i].lower() in ("asc", "desc"):
            descending, i = tokens[i].lower() == "desc", i + 1
        order.append(("id" if name in ("key", "issuekey") else name, descending))
        if i < len(tokens):
            if tokens[i] != ",":
                raise JqlError(f"Error in the JQL Query: Expecting ',' but got '{tokens[i]}'.")
            i += 1
    if not order or len(order) > 7:
        raise JqlError("Error in the JQL Query: ORDER BY takes between 1 and 7 fields.")
    return order, i


def matches(clause: Clause, value: Any) -> bool:
    """Does an issue's ``value`` for the clause's field satisfy it (lists: any element)."""
    values = value if isinstance(value, list) else [value]
    if clause.op == "in":
        return any(str(v).lower() in {str(c).lower() for c in clause.value} for v in values)
    if clause.op in ("=", "!="):
        hit = any(str(v).lower() == str(clause.value).lower() for v in values)
        return hit if clause.op == "=" else not hit
    v = float(value)
    return {">=": v >= clause.value, ">": v > clause.value, "<=": v <= clause.value,
            "<": v < clause.value}[clause.op]


def tz_of(name: str | None) -> tzinfo:
    """A time zone by IANA name; UTC when unknown (the emulator's accounts all have valid ones)."""
    if name:
        try:
            return ZoneInfo(name)
        except (KeyError, ValueError):       # ZoneInfoNotFoundError is a KeyError
            pass
    return timezone.utc
