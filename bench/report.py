"""What a benchmark returns (rows of figures) and how the rows become one Markdown table.

Durations are kept in seconds everywhere and converted to the row's unit only when shown;
rates are per second ("/s"), sizes in bytes ("B"), and counts have no unit (""). A target
is either a bound on the value itself or, for figures judged against a baseline, a bound
on value / baseline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

UNITS = {"ms": 1000.0, "s": 1.0, "/s": 1.0, "B": 1.0, "": 1.0}
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))


@dataclass(frozen=True)
class Row:
    """One figure: a value, how many samples it summarises, and its yardsticks."""

    figure: str
    value: float
    samples: int
    unit: str = "ms"
    spread: tuple[float, float] | None = None  # (min, max) when `value` is a median of runs
    baseline: float | None = None  # the same figure measured the old/naive way, same run
    target: float | None = None  # a bound on the value (at most; at least if higher_is_better)
    note: str = ""
    baseline_spread: tuple[float, float] | None = None
    target_ratio: float | None = None  # a bound on value / baseline
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        """`value / baseline`, when there is a baseline."""
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target."""
        if self.target_ratio is not None:
            bound, value = self.target_ratio, self.ratio
        else:
            bound, value = self.target, self.value
        if bound is None or value is None:
            return None
        return value >= bound if self.higher_is_better else value <= bound


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile: always a value that was actually observed."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def percentile_rows(figure: str, samples: Sequence[float], *,
                    targets: dict[str, float] | None = None,
                    baseline: Sequence[float] | None = None, note: str = "") -> list[Row]:
    """p50, p99 and max of `samples` (seconds), each against the same percentile of `baseline`."""
    targets = targets or {}
    return [Row(figure=f"{figure} {label}", value=percentile(samples, q), samples=len(samples),
                baseline=percentile(baseline, q) if baseline else None,
                target=targets.get(label), note=note if label == "p50" else "")
            for label, q in PERCENTILES]


def median_row(figure: str, samples: Sequence[float], *, unit: str = "ms",
               target: float | None = None, note: str = "",
               baseline: Sequence[float] | None = None, target_ratio: float | None = None,
               higher_is_better: bool = False) -> Row:
    """The median of repeated runs, with their min-max, beside the baseline's the same way."""
    return Row(figure=f"{figure} (median)", value=statistics.median(samples),
               samples=len(samples), unit=unit, spread=(min(samples), max(samples)),
               target=target, note=note,
               baseline=statistics.median(baseline) if baseline else None,
               baseline_spread=(min(baseline), max(baseline)) if baseline else None,
               target_ratio=target_ratio, higher_is_better=higher_is_better)


def _number(value: float, unit: str) -> str:
    scaled = value * UNITS[unit]
    if unit in ("/s", "B"):
        return f"{scaled:,.0f}"
    return f"{scaled:.1f}" if unit in ("ms", "") else f"{scaled:.2f}"


def _amount(value: float, unit: str) -> str:
    return _number(value, unit) + ("/s" if unit == "/s" else f" {unit}" if unit else "")


def _with_spread(value: float, spread: tuple[float, float] | None, unit: str) -> str:
    shown = _amount(value, unit)
    if spread is not None:
        shown += f" ({_number(spread[0], unit)}-{_number(spread[1], unit)})"
    return shown


def _target(row: Row) -> str:
    sign = "≥" if row.higher_is_better else "≤"
    if row.target_ratio is not None:
        return f"{sign} {row.target_ratio:g}x"
    return "" if row.target is None else f"{sign} {_amount(row.target, row.unit)}"


def _cells(row: Row) -> list[str]:
    met = {None: "", True: "yes", False: "**no**"}[row.met]
    return [row.figure, str(row.samples), _with_spread(row.value, row.spread, row.unit),
            "" if row.baseline is None
            else _with_spread(row.baseline, row.baseline_spread, row.unit),
            "" if row.ratio is None else f"{row.ratio:.2f}x", _target(row), met]


HEADER = ["figure", "n", "value (min-max)", "baseline (min-max)", "ratio", "target",
          "met?"]


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as one Markdown table, columns padded so it reads as plain text too."""
    body = [HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[column]) for line in body) for column in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(body[0]), rule, *(line(cells) for cells in body[1:])])


def markdown_notes(rows: Sequence[Row]) -> str:
    """The rows' notes as a Markdown list, one per row that has one."""
    return "\n".join(f"- **{row.figure}**: {row.note}" for row in rows if row.note)
