"""What a benchmark returns (rows of figures) and how the rows become one Markdown table.

Durations are kept in seconds everywhere and converted to the row's unit only when shown.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

UNITS = {"ms": 1000.0, "s": 1.0}
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("max", 100.0))


@dataclass(frozen=True)
class Row:
    """One figure: a value in seconds, how many samples it summarises, and its yardsticks."""

    figure: str
    value: float
    samples: int
    unit: str = "ms"
    spread: tuple[float, float] | None = None  # (min, max) when `value` is a median of runs
    baseline: float | None = None  # the same figure measured the old/naive way, same run
    target: float | None = None  # an upper bound: the figure should be at most this
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """`value / baseline`, when there is a baseline."""
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the target is met; None without a target."""
        return None if self.target is None else self.value <= self.target


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
               target: float | None = None, note: str = "") -> Row:
    """The median of repeated runs (seconds), with their min-max."""
    return Row(figure=f"{figure} (median)", value=statistics.median(samples),
               samples=len(samples), unit=unit, spread=(min(samples), max(samples)),
               target=target, note=note)


def _amount(seconds: float, unit: str) -> str:
    scaled = seconds * UNITS[unit]
    return f"{scaled:.1f} {unit}" if unit == "ms" else f"{scaled:.2f} {unit}"


def _cells(row: Row) -> list[str]:
    value = _amount(row.value, row.unit)
    if row.spread is not None:
        low, high = (_amount(bound, row.unit).split()[0] for bound in row.spread)
        value += f" ({low}-{high})"
    met = {None: "", True: "yes", False: "**no**"}[row.met]
    return [row.figure, str(row.samples), value,
            "" if row.baseline is None else _amount(row.baseline, row.unit),
            "" if row.ratio is None else f"{row.ratio:.2f}x",
            "" if row.target is None else f"≤ {_amount(row.target, row.unit)}", met]


HEADER = ["figure", "n", "value (min-max)", "baseline", "ratio", "target", "met?"]


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
