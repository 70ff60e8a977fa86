"""ListOperations `filter`: parsing, evaluation, createTime bounds and error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import InvalidArgument
from core.filtering import Filter, compile_filter
from core.operation import Operation
from core.states import State

T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000


def make_operation(**overrides: Any) -> Operation:
    fields: dict[str, Any] = {
        "project": "demo", "id": "x", "job": "demo.sleep", "state": State.PENDING,
        "create_time": T0, "update_time": T0, "labels": {},
    }
    return Operation(**{**fields, **overrides})


OPERATIONS = [
    make_operation(id="a", job="demo.sleep", state=State.PENDING,
                   labels={"env": "prod", "team": "core"}, create_time=T0),
    make_operation(id="b", job="demo.sleep", state=State.RUNNING, labels={"env": "dev"},
                   create_time=T0 + SECOND),
    make_operation(id="c", job="demo.fail", state=State.SUCCEEDED, create_time=T0 + 2 * SECOND),
    make_operation(id="d", job="demo.fail", state=State.FAILED, labels={"env": "prod"},
                   create_time=T0 + 3 * SECOND),
    make_operation(id="e", job="other-job", state=State.CANCELLED, labels={"team": "core"},
                   create_time=T0 - 86_400 * SECOND),
    make_operation(id="f", job="demo.sleep", state=State.CANCELLING, labels={"env": "eu-west-1"},
                   create_time=T0 + 4 * SECOND),
]


def compiled(text: str) -> Filter:
    result = compile_filter(text)
    assert result is not None
    return result


def matching(text: str) -> str:
    """The ids of OPERATIONS the filter matches, in order, as one string."""
    flt = compiled(text)
    return "".join(operation.id for operation in OPERATIONS if flt.matches(operation))


def violation(text: str) -> str:
    """The `filter` field violation of compiling `text`, which must fail."""
    with pytest.raises(InvalidArgument) as caught:
        compile_filter(text)
    [detail] = [d for d in caught.value.details() if "fieldViolations" in d]
    [entry] = detail["fieldViolations"]
    assert entry["field"] == "filter"
    assert caught.value.reason == "INVALID_FIELD"
    description: str = entry["description"]
    return description


@pytest.mark.parametrize("text", ["", " ", "\t\n  "])
def test_blank_filter_compiles_to_none(text: str) -> None:
    assert compile_filter(text) is None


def test_filter_keeps_its_text() -> None:
    assert compiled(" done = true ").text == " done = true "


@pytest.mark.parametrize(("text", "expected"), [
    ("done = true", "cde"),
    ("done = false", "abf"),
    ("done != true", "abf"),
    ("done != false", "cde"),
    ("metadata.state = RUNNING", "b"),
    ('metadata.state = "CANCELLING"', "f"),
    ("metadata.state = 'FAILED'", "d"),
    ("metadata.state != RUNNING", "acdef"),
    ('metadata.job = "demo.sleep"', "abf"),
    ("metadata.job = demo.sleep", "abf"),
    ("metadata.job = other-job", "e"),
    ("metadata.job != demo.sleep", "cde"),
    ('metadata.job:"demo.fail"', "cd"),
    ("metadata.job : demo.fail", "cd"),
    ("metadata.job:*", "abcdef"),
    ("metadata.job = nothing", ""),
    ("metadata.labels.env = prod", "ad"),
    ('metadata.labels.env = "eu-west-1"', "f"),
    ("metadata.labels.env = eu-west-1", "f"),
    ("metadata.labels.env != prod", "bcef"),
    ("metadata.labels.env:dev", "b"),
    ("metadata.labels:env", "abdf"),
    ('metadata.labels:"team"', "ae"),
    ("metadata.labels.env:*", "abdf"),
    ("metadata.labels.team:*", "ae"),
    ("metadata.labels.missing:*", ""),
])
def test_each_field_and_operator(text: str, expected: str) -> None:
    assert matching(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('metadata.createTime = "2026-01-01T00:00:00Z"', "a"),
    ('metadata.createTime != "2026-01-01T00:00:00Z"', "bcdef"),
    ('metadata.createTime > "2026-01-01T00:00:00Z"', "bcdf"),
    ('metadata.createTime >= "2026-01-01T00:00:00Z"', "abcdf"),
    ('metadata.createTime < "2026-01-01T00:00:02Z"', "abe"),
    ('metadata.createTime <= "2026-01-01T00:00:02Z"', "abce"),
    ("metadata.createTime < '2025-12-31T12:00:00Z'", "e"),
    # The same instants written with other offsets.
    ('metadata.createTime = "2026-01-01T01:00:00+01:00"', "a"),
    ('metadata.createTime = "2025-12-31T19:00:01-05:00"', "b"),
    ('metadata.createTime >= "2025-12-31T19:00:03-05:00"', "df"),
    ('metadata.createTime = "2026-01-01t00:00:00z"', "a"),
])
def test_create_time_comparisons(text: str, expected: str) -> None:
    assert matching(text) == expected


FRACTIONAL = make_operation(create_time=T0 + 123_456)


@pytest.mark.parametrize(("text", "expected"), [
    ('metadata.createTime = "2026-01-01T00:00:00.123456Z"', True),
    ('metadata.createTime = "2026-01-01T00:00:00.1234560Z"', True),
    ('metadata.createTime = "2026-01-01T00:00:00.123456000Z"', True),
    ('metadata.createTime = "2026-01-01T00:00:00.123456001Z"', False),
    ('metadata.createTime = "2026-01-01T00:00:00.12345Z"', False),
    ('metadata.createTime > "2026-01-01T00:00:00.123455999Z"', True),
    ('metadata.createTime > "2026-01-01T00:00:00.123456Z"', False),
    ('metadata.createTime >= "2026-01-01T00:00:00.123456Z"', True),
    ('metadata.createTime < "2026-01-01T00:00:00.123456001Z"', True),
    ('metadata.createTime < "2026-01-01T00:00:00.123456Z"', False),
    ('metadata.createTime <= "2026-01-01T00:00:00.123456Z"', True),
    ('metadata.createTime <= "2026-01-01T00:00:00.123455999Z"', False),
    ('metadata.createTime > "2026-01-01T00:00:00.1Z"', True),
    ('metadata.createTime = "2026-01-01T05:30:00.123456+05:30"', True),
])
def test_create_time_fractional_seconds(text: str, expected: bool) -> None:
    assert compiled(text).matches(FRACTIONAL) is expected


@pytest.mark.parametrize(("text", "expected"), [
    # OR binds tighter than AND: this is done AND (fail OR team).
    ("done = true AND metadata.job = demo.fail OR metadata.labels:team", "cde"),
    ("done = true metadata.job = demo.fail OR metadata.labels:team", "cde"),
    ("metadata.labels:team OR metadata.job = demo.fail AND done = true", "cde"),
    ("(done = true AND metadata.job = demo.fail) OR metadata.labels:team", "acde"),
    ("done = true AND (metadata.job = demo.fail OR metadata.labels:team)", "cde"),
    # Juxtaposition is AND.
    ("metadata.job = demo.sleep metadata.labels:env", "abf"),
    ("metadata.job = demo.sleep metadata.labels.env = prod", "a"),
    ("metadata.state = PENDING OR metadata.state = RUNNING OR metadata.state = FAILED", "abd"),
    # NOT binds tighter than OR and AND.
    ("NOT done = true", "abf"),
    ("NOT done = true OR metadata.state = FAILED", "abdf"),
    ("NOT (done = true OR metadata.state = PENDING)", "bf"),
    ("NOT(done = true)", "abf"),
    ("-metadata.state = RUNNING", "acdef"),
    ("-metadata.labels:env", "ce"),
    ("-metadata.labels:env -done = false", "ce"),
    ("-(metadata.labels:env OR metadata.labels:team) done = true", "c"),
    ("((((metadata.state = RUNNING))))", "b"),
    ("(metadata.state = RUNNING) (metadata.labels:env)", "b"),
])
def test_precedence_parentheses_and_negation(text: str, expected: str) -> None:
    assert matching(text) == expected


@pytest.mark.parametrize("text", [
    "metadata.state=RUNNING",
    "  metadata.state   =   RUNNING  ",
    "\n\tmetadata.state\t=\nRUNNING\n",
    "(metadata.state=RUNNING)",
    "( metadata.state = RUNNING )",
])
def test_whitespace_does_not_matter(text: str) -> None:
    assert matching(text) == "b"


@pytest.mark.parametrize(("text", "value"), [
    (r'metadata.labels.note = "say \"hi\""', 'say "hi"'),
    (r"metadata.labels.note = 'say \'hi\''", "say 'hi'"),
    ("metadata.labels.note = 'say \"hi\"'", 'say "hi"'),
    (r'metadata.labels.note = "back\\slash"', "back\\slash"),
    (r'metadata.labels.note = "tab\there"', "tab\there"),
    (r'metadata.labels.note = "two\nlines"', "two\nlines"),
    ('metadata.labels.note = "AND OR NOT ( ) = :"', "AND OR NOT ( ) = :"),
    ('metadata.labels.note = ""', ""),
])
def test_quoting_and_escapes(text: str, value: str) -> None:
    flt = compiled(text)
    assert flt.matches(make_operation(labels={"note": value}))
    assert not flt.matches(make_operation(labels={"note": value + "!"}))


@pytest.mark.parametrize(("text", "bounds"), [
    ("done = true", (None, None)),
    ('metadata.createTime >= "2026-01-01T00:00:00Z"', (T0, None)),
    ('metadata.createTime > "2026-01-01T00:00:00Z"', (T0 + 1, None)),
    ('metadata.createTime < "2026-01-01T00:00:00Z"', (None, T0)),
    ('metadata.createTime <= "2026-01-01T00:00:00Z"', (None, T0 + 1)),
    ('metadata.createTime = "2026-01-01T00:00:00Z"', (T0, T0 + 1)),
    ('metadata.createTime > "2026-01-01T00:00:00.0000005Z"', (T0 + 1, None)),
    ('metadata.createTime < "2026-01-01T00:00:00.0000005Z"', (None, T0 + 1)),
    ('metadata.createTime >= "2026-01-01T01:00:00+01:00"', (T0, None)),
    ('metadata.createTime > "2026-01-01T00:00:00Z" AND metadata.createTime < '
     '"2026-01-01T00:00:05Z" AND done = true', (T0 + 1, T0 + 5 * SECOND)),
    ('metadata.createTime >= "2026-01-01T00:00:00Z" metadata.createTime < '
     '"2026-01-01T00:00:05Z"', (T0, T0 + 5 * SECOND)),
    ('metadata.createTime >= "2026-01-01T00:00:00Z" metadata.createTime >= '
     '"2026-01-01T00:00:03Z" metadata.createTime < "2026-01-01T00:00:09Z" '
     'metadata.createTime <= "2026-01-01T00:00:05Z"', (T0 + 3 * SECOND, T0 + 5 * SECOND + 1)),
    ('(metadata.createTime >= "2026-01-01T00:00:00Z" AND done = true) AND '
     'metadata.createTime < "2026-01-01T00:00:05Z"', (T0, T0 + 5 * SECOND)),
    # Conservative: OR, NOT and != give no bound.
    ('metadata.createTime >= "2026-01-01T00:00:00Z" OR done = true', (None, None)),
    ('metadata.createTime > "2026-01-01T00:00:00Z" OR metadata.createTime < '
     '"2025-01-01T00:00:00Z"', (None, None)),
    ('NOT metadata.createTime >= "2026-01-01T00:00:00Z"', (None, None)),
    ('-metadata.createTime < "2026-01-01T00:00:00Z"', (None, None)),
    ('metadata.createTime != "2026-01-01T00:00:00Z"', (None, None)),
    ('done = true AND (metadata.createTime >= "2026-01-01T00:00:00Z" OR done = false)',
     (None, None)),
    ('done = true AND metadata.createTime < "2026-01-01T00:00:05Z" OR done = false',
     (None, None)),
])
def test_create_time_bounds(text: str, bounds: tuple[int | None, int | None]) -> None:
    assert compiled(text).create_time_bounds() == bounds


@pytest.mark.parametrize("text", [
    'metadata.createTime > "2026-01-01T00:00:00.0000005Z"',
    'metadata.createTime <= "2026-01-01T00:00:00.0000015Z"',
    'metadata.createTime = "2026-01-01T00:00:00.000002Z" done = false',
    'metadata.createTime = "2026-01-01T00:00:00.0000025Z"',
    'metadata.createTime >= "2026-01-01T00:00:00.000001Z" -metadata.createTime > '
    '"2026-01-01T00:00:00.000002Z"',
])
def test_bounds_never_exclude_a_match(text: str) -> None:
    flt = compiled(text)
    lower, upper = flt.create_time_bounds()
    for micros in range(T0 - 3, T0 + 4):
        if flt.matches(make_operation(create_time=micros)):
            assert lower is None or micros >= lower
            assert upper is None or micros < upper


def test_equality_with_a_sub_microsecond_timestamp_matches_nothing() -> None:
    flt = compiled('metadata.createTime = "2026-01-01T00:00:00.0000005Z"')
    assert flt.create_time_bounds() == (T0 + 1, T0 + 1)  # an empty range
    assert not any(flt.matches(make_operation(create_time=T0 + d)) for d in (-1, 0, 1))


def test_limits_are_inclusive() -> None:
    nested = "(" * 32 + "done = true" + ")" * 32
    assert compiled(nested).matches(make_operation(state=State.FAILED))
    padded = "done = true".ljust(2000)
    assert compiled(padded).matches(make_operation(state=State.FAILED))


@pytest.mark.parametrize(("text", "message"), [
    ("name = foo", "unknown field 'name' at column 1"),
    ("metadata.foo = 1", "unknown field 'metadata.foo'"),
    ("done = true AND labels.env = prod", "unknown field 'labels.env' at column 17"),
    ("done < true", "operator '<' at column 6 does not apply to done; use =, !="),
    ("done : true", "operator ':' at column 6 does not apply to done"),
    ("done = yes", "done takes true or false, not 'yes' at column 8"),
    ('done = "true"', "done takes true or false"),
    ("metadata.state = DONE", "unknown state 'DONE' at column 18; valid states are PENDING, "
                              "RUNNING, CANCELLING, SUCCEEDED, FAILED, CANCELLED"),
    ("metadata.state = running", "unknown state 'running'"),
    ("metadata.state > RUNNING", "operator '>' at column 16 does not apply to metadata.state"),
    ("metadata.job < demo.sleep", "operator '<' at column 14 does not apply to metadata.job"),
    ("metadata.job = demo.*", "wildcards are not supported, found 'demo.*' at column 16"),
    ('metadata.labels.env = "*"', "wildcards are not supported"),
    ("metadata.labels = prod", "operator '=' at column 17 does not apply to metadata.labels"),
    ("metadata.labels.Env = prod", "label key 'Env' at column 1 is invalid"),
    ("metadata.labels.a.b = prod", "label key 'a.b' at column 1 is invalid"),
    ("metadata.labels:*", "label key '*' at column 17 is invalid"),
    ("metadata.labels.env < prod", "operator '<' at column 21 does not apply"),
    ("metadata.createTime > 2026-01-01T00:00:00Z", "metadata.createTime takes a quoted RFC 3339 "
                                                   "timestamp"),
    ('metadata.createTime > "2026-01-01"', "not '2026-01-01' at column 23"),
    ('metadata.createTime > "2026-01-01T00:00:00"', "RFC 3339"),
    ('metadata.createTime > "2026-13-01T00:00:00Z"', "RFC 3339"),
    ('metadata.createTime > "2026-02-30T00:00:00Z"', "RFC 3339"),
    ('metadata.createTime > "2026-01-01T24:00:00Z"', "RFC 3339"),
    ('metadata.createTime > "2026-01-01T00:00:00+24:00"', "RFC 3339"),
    ('metadata.createTime > "2026-01-01T00:00:00.1234567890Z"', "RFC 3339"),
    ('metadata.createTime > "2026-01-01 00:00:00Z"', "RFC 3339"),
    ('metadata.createTime : "2026-01-01T00:00:00Z"', "operator ':' at column 21"),
    ("(done = true", "'(' at column 1 is never closed"),
    ("((done = true) OR done = false", "'(' at column 1 is never closed"),
    ("done = true)", "unmatched ')' at column 12"),
    ("(done = true))", "unmatched ')' at column 14"),
    ("()", "empty parentheses at column 1"),
    ("done = true AND ( )", "empty parentheses at column 17"),
    ("done = true AND", "expected a comparison, found the end of the filter"),
    ("done = true OR", "expected a comparison, found the end of the filter"),
    ("AND done = true", "expected a comparison, found 'AND' at column 1"),
    ("done = true OR OR done = false", "expected a comparison, found 'OR' at column 16"),
    ("NOT", "expected a comparison, found the end of the filter"),
    ("NOT NOT done = true", "expected a comparison, found 'NOT' at column 5"),
    ("- -done = true", "expected a comparison, found '-' at column 3"),
    ("done = true = false", "expected a comparison, found '=' at column 13"),
    ('"done" = true', "expected a comparison, found 'done' at column 1"),
    ("done", "expected an operator after 'done', found the end of the filter"),
    ("prod", "expected an operator after 'prod'"),
    ("done = true false", "expected an operator after 'false', found the end of the filter"),
    ("done = true garbage here", "expected an operator after 'garbage', found 'here' at col"),
    ("done = true and done = false", "(AND, OR and NOT are uppercase)"),
    ("done =", "expected a value after '=', found the end of the filter"),
    ("done = (true)", "expected a value after '=', found '(' at column 8"),
    ("metadata.job = AND", "expected a value after '=', found 'AND' at column 16"),
    ('metadata.job = "demo', "unterminated string at column 16"),
    ("metadata.job = 'demo", "unterminated string at column 16"),
    ("done ! true", "unexpected '!' at column 6"),
    (r'metadata.job = "a\qb"', "unknown escape '\\q' in the string at column 16"),
    ("done = true " + "x" * 1989, "filter is 2001 characters long; the limit is 2000"),
    ("(" * 33 + "done = true" + ")" * 33, "parentheses nest deeper than 32 at column 33"),
])
def test_bad_filters_are_invalid_argument(text: str, message: str) -> None:
    assert message in violation(text)


def test_messages_never_echo_much_user_input() -> None:
    description = violation("metadata." + "x" * 500 + " = 1")
    assert "unknown field 'metadata.xxx" in description
    assert "..." in description
    assert len(description) < 200
