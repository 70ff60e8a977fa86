"""The ListOperations `filter`: the AIP-160 subset opqueue supports, compiled to a predicate.

Grammar (https://google.aip.dev/160), loosest binding first:

    expression := sequence {"AND" sequence}
    sequence   := factor {factor}          -- juxtaposition also means AND
    factor     := term {"OR" term}         -- so `a AND b OR c` is `a AND (b OR c)`
    term       := ["NOT" | "-"] simple
    simple     := "(" expression ")" | FIELD OPERATOR VALUE

A filter is parsed once into closures over `Operation`; `Filter.matches` never re-parses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import InvalidArgument
from core.names import LABEL_KEY
from core.operation import Operation
from core.states import State

MAX_LENGTH = 2000
MAX_DEPTH = 32
FIELDS = "done, metadata.state, metadata.job, metadata.labels.KEY, metadata.createTime"
LABELS = "metadata.labels"

Test = Callable[[Operation], bool]
Bounds = tuple[int | None, int | None]
UNBOUNDED: Bounds = (None, None)

_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<paren>[()])
      | (?P<op><=|>=|!=|[<>=:])
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<minus>-)
      | (?P<text>[^\s()<>=!:"']+)
      | (?P<bad>.)""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
# A timestamp's numeric UTC offset, whose range protobuf's parser does not check.
_OFFSET = re.compile(r"[+-](\d\d):(\d\d)$", re.ASCII)
# Open ends of a createTime range, far outside any datetime, so one chained compare serves all.
_EARLIEST, _LATEST = -(2**63), 2**63


@dataclass(frozen=True)
class Filter:
    """A compiled ListOperations filter."""

    text: str
    _test: Test = field(repr=False, compare=False)
    _bounds: Bounds = field(default=UNBOUNDED, repr=False, compare=False)

    def matches(self, operation: Operation) -> bool:
        """True if `operation` satisfies the filter."""
        return self._test(operation)

    def create_time_bounds(self) -> Bounds:
        """(lower inclusive, upper exclusive) microseconds implied by top-level AND-ed
        createTime comparisons; None where the filter sets no bound. OR and NOT give none."""
        return self._bounds


def compile_filter(text: str) -> Filter | None:
    """Compile a ListOperations `filter`: None if blank, INVALID_ARGUMENT if malformed."""
    if len(text) > MAX_LENGTH:
        raise _error(f"filter is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        return None
    expr = _Parser(_tokenize(text)).parse()
    return Filter(text, expr.test, expr.bounds)


@dataclass(frozen=True)
class _Token:
    kind: str  # "text", "string", "op", "end", or the token itself: "(", ")", "-", "AND"...
    value: str
    column: int


@dataclass(frozen=True)
class _Expr:
    test: Test
    bounds: Bounds = UNBOUNDED


class _Parser:
    """Recursive descent over the tokens, one method per grammar rule."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> _Expr:
        expr = self.expression()
        if (token := self.take()).kind == ")":
            raise _error(f"unmatched ')' at column {token.column}")
        return expr

    def expression(self) -> _Expr:
        # `a AND b` and `a b` are the same conjunction, so one loop reads both rules.
        parts = [self.factor()]
        while (kind := self.tokens[self.pos].kind) not in (")", "end"):
            if kind == "AND":
                self.take()
            parts.append(self.factor())
        return _all_of(parts)

    def factor(self) -> _Expr:
        parts = [self.term()]
        while self.tokens[self.pos].kind == "OR":
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        tests = tuple(part.test for part in parts)
        return _Expr(lambda op: any(test(op) for test in tests))

    def term(self) -> _Expr:
        if self.tokens[self.pos].kind not in ("NOT", "-"):
            return self.simple()
        self.take()
        test = self.simple().test
        return _Expr(lambda op: not test(op))

    def simple(self) -> _Expr:
        token = self.take()
        if token.kind == "(":
            if self.tokens[self.pos].kind == ")":
                raise _error(f"empty parentheses at column {token.column}")
            if self.depth == MAX_DEPTH:
                raise _error(f"parentheses nest deeper than {MAX_DEPTH} at column {token.column}")
            self.depth += 1
            inner = self.expression()
            self.depth -= 1
            if self.take().kind != ")":
                raise _error(f"'(' at column {token.column} is never closed")
            return inner
        if token.kind != "text":
            raise _error(f"expected a comparison, found {_found(token)}")
        op = self.take()
        if op.kind != "op":
            hint = " (AND, OR and NOT are uppercase)" if token.value.upper() in _KEYWORDS else ""
            raise _error(f"expected an operator after {_shown(token)}, found {_found(op)}{hint}")
        value = self.take()
        if value.kind not in ("text", "string"):
            raise _error(f"expected a value after '{op.value}', found {_found(value)}")
        return _restriction(token, op, value)


def _restriction(name: _Token, op: _Token, value: _Token) -> _Expr:
    if name.value.startswith(LABELS + "."):
        return _label(_label_key(name.value.removeprefix(LABELS + "."), name.column), op, value)
    builder = _BUILDERS.get(name.value)
    if builder is None:
        raise _error(f"unknown field {_shown(name)} at column {name.column}; "
                     f"filterable fields are {FIELDS}")
    return builder(op, value)


def _done(op: _Token, value: _Token) -> _Expr:
    _check_operator("done", op, ("=", "!="))
    if value.kind != "text" or value.value not in ("true", "false"):
        raise _error(f"done takes true or false, not {_shown(value)} at column {value.column}")
    return _compare(op, attrgetter("done"), value.value == "true")


def _state(op: _Token, value: _Token) -> _Expr:
    _check_operator("metadata.state", op, ("=", "!="))
    if value.value not in State.__members__:
        raise _error(f"unknown state {_shown(value)} at column {value.column}; "
                     f"valid states are {', '.join(State.__members__)}")
    return _compare(op, attrgetter("state"), State(value.value))


def _job(op: _Token, value: _Token) -> _Expr:
    _check_operator("metadata.job", op, ("=", "!=", ":"))
    if _is_presence(op, value):
        return _Expr(lambda operation: bool(operation.job))
    return _compare(op, attrgetter("job"), _literal(value))


def _label(key: str, op: _Token, value: _Token) -> _Expr:
    _check_operator(f"{LABELS}.{key}", op, ("=", "!=", ":"))
    if _is_presence(op, value):
        return _Expr(lambda operation: key in operation.labels)
    return _compare(op, lambda operation: operation.labels.get(key), _literal(value))


def _has_label(op: _Token, value: _Token) -> _Expr:
    _check_operator(LABELS, op, (":",))
    key = _label_key(value.value, value.column)
    return _Expr(lambda operation: key in operation.labels)


def _create_time(op: _Token, value: _Token) -> _Expr:
    _check_operator("metadata.createTime", op, ("=", "!=", "<", "<=", ">", ">="))
    nanos = _timestamp_nanos(value.value) if value.kind == "string" else None
    if nanos is None:
        raise _error(f"metadata.createTime takes a quoted RFC 3339 timestamp such as "
                     f"\"2026-01-01T00:00:00Z\", not {_shown(value)} at column {value.column}")
    # Times are stored in microseconds: round the bound so the comparison stays exact.
    floor, ceiling = nanos // 1000, -(-nanos // 1000)
    lower, upper = {
        "=": (ceiling, floor + 1), "!=": (ceiling, floor + 1),
        "<": (None, ceiling), "<=": (None, floor + 1),
        ">": (floor + 1, None), ">=": (ceiling, None),
    }[op.value]
    low = _EARLIEST if lower is None else lower
    high = _LATEST if upper is None else upper
    if op.value == "!=":
        return _Expr(lambda operation: not low <= operation.create_time < high)
    return _Expr(lambda operation: low <= operation.create_time < high, (lower, upper))


_BUILDERS: dict[str, Callable[[_Token, _Token], _Expr]] = {
    "done": _done,
    "metadata.state": _state,
    "metadata.job": _job,
    LABELS: _has_label,
    "metadata.createTime": _create_time,
}


def _all_of(parts: list[_Expr]) -> _Expr:
    if len(parts) == 1:
        return parts[0]
    tests = tuple(part.test for part in parts)
    lowers = [part.bounds[0] for part in parts if part.bounds[0] is not None]
    uppers = [part.bounds[1] for part in parts if part.bounds[1] is not None]
    return _Expr(lambda op: all(test(op) for test in tests),
                 (max(lowers, default=None), min(uppers, default=None)))


def _compare(op: _Token, get: Callable[[Operation], object], wanted: object) -> _Expr:
    if op.value == "!=":
        return _Expr(lambda operation: get(operation) != wanted)
    return _Expr(lambda operation: get(operation) == wanted)


def _check_operator(name: str, op: _Token, allowed: tuple[str, ...]) -> None:
    if op.value not in allowed:
        raise _error(f"operator '{op.value}' at column {op.column} does not apply to {name}; "
                     f"use {', '.join(allowed)}")


def _is_presence(op: _Token, value: _Token) -> bool:
    """`FIELD:*`, AIP-160's "has a value" test."""
    return op.value == ":" and value.kind == "text" and value.value == "*"


def _label_key(key: str, column: int) -> str:
    if not LABEL_KEY.fullmatch(key):
        raise _error(f"label key {_shown(key)} at column {column} is invalid")
    return key


def _literal(value: _Token) -> str:
    if "*" in value.value:
        raise _error(f"wildcards are not supported, found {_shown(value)} at column {value.column}")
    return value.value


def _timestamp_nanos(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp, or None if it is not one."""
    offset = _OFFSET.search(text)
    if offset and (int(offset[1]) > 23 or int(offset[2]) > 59):
        return None  # protobuf takes any two digits there
    stamp = Timestamp()
    try:
        stamp.FromJsonString(text.upper())  # RFC 3339 allows a lowercase 't' and 'z'
    except ValueError:
        return None
    return int(stamp.ToNanoseconds())


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        kind, value, column = match.lastgroup, match.group(), match.start() + 1
        if kind == "space":
            continue
        if kind is None or kind == "bad":
            problem = "unterminated string" if value in "\"'" else f"unexpected {value!r}"
            raise _error(f"{problem} at column {column}")
        if kind == "string":
            value = _unescape(value, column)
        elif kind in ("paren", "minus") or value in _KEYWORDS:
            kind = value
        tokens.append(_Token(kind, value, column))
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _unescape(quoted: str, column: int) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[1] not in _ESCAPES:
            raise _error(f"unknown escape '\\{match[1]}' in the string at column {column}")
        return _ESCAPES[match[1]]

    return re.sub(r"\\(.)", replace, quoted[1:-1], flags=re.DOTALL)


def _found(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    return f"{_shown(token)} at column {token.column}"


def _shown(token: _Token | str) -> str:
    """User input quoted for a message, cut short so a long filter keeps the message short."""
    text = token if isinstance(token, str) else token.value
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _error(message: str) -> InvalidArgument:
    return InvalidArgument.for_fields({"filter": message})
