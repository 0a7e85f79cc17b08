"""The study's table: one row per variant, in the plan's order, read from each trial's own ``results.csv``.

A row's metric is the mean (± the sample standard deviation, with two seeds or more) over its finished seeds of each
trial's best epoch. The noise rule: a difference to the base is "within noise" when its size is at most the larger of
the two rows' seed standard deviations; with a single seed the spread is unknown and nothing is claimed.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..tables import aligned_lines, markdown_lines
from .plan import BASE_ROW, Plan, Variant, read_plan
from .tasks import metric_labels
from .trial import Trial, TrialResult, read_results

MEASURED_FILE = "models/measured.json"  # compare's parameters and GFLOPs of each row's model


@dataclass(frozen=True)
class StudyRow:
    """One row of a study's table: a variant over its seeds, read from its trials' results.csv."""

    variant: str
    edits: list[str]
    status: str  # done, running, pending, refused: REASON, failed: REASON
    seeds_done: int
    seeds: int
    metric: float | None = None
    metric_std: float | None = None
    map50: float | None = None
    map50_std: float | None = None
    difference: float | None = None
    noise: str | None = None  # "within noise", "beyond noise", or None (fewer than two seeds)
    epochs: list[int] | None = None
    best_epoch: list[int] | None = None
    seconds: float | None = None
    parameters: int | None = None
    gflops: float | None = None
    task: str | None = None  # the plan's: what metric and map50 are (study/tasks.py)


def within_noise(difference: float, spread_a: float | None, spread_b: float | None) -> bool | None:
    """The noise rule: ``|difference| <= max(spread_a, spread_b)``; None when a row's spread is unknown."""
    if spread_a is None or spread_b is None:
        return None
    return abs(difference) <= max(spread_a, spread_b)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def variant_row(variant: Variant, states: list[dict], results: list[TrialResult | None]) -> StudyRow:
    """One variant's row from its trials' states and results (in seed order)."""
    if variant.refused is not None:
        return StudyRow(variant.name, list(variant.edits), f"refused: {variant.refused}", 0, len(states))
    done = [r for s, r in zip(states, results) if s["status"] == "done" and r is not None]
    metric, metric_std = mean_std([r.metric for r in done])
    map50, map50_std = mean_std([r.map50 for r in done])
    read = [r for r in results if r is not None]
    seconds = sum(s.get("seconds", 0.0) for s in states)
    return StudyRow(variant.name, list(variant.edits), row_status(states, len(done)), len(done), len(states), metric,
               metric_std, map50, map50_std, epochs=[r.epochs for r in read] or None,
               best_epoch=[r.best_epoch for r in read] or None, seconds=round(seconds, 1) if seconds else None)


def row_status(states: list[dict], done: int) -> str:
    """``failed: REASON`` (the first failed seed's), ``done`` (every seed), ``running`` or ``pending``."""
    failed = next((s for s in states if s["status"] == "failed"), None)
    if failed is not None:
        return f"failed: {failed.get('reason', 'unknown')}"
    if done == len(states):
        return "done"
    return "running" if any(s["status"] == "running" for s in states) else "pending"


def with_differences(rows: list[StudyRow]) -> list[StudyRow]:
    """Each row's metric minus the base's, and the noise rule's verdict on it."""
    base = next(row for row in rows if row.variant == BASE_ROW)
    out = []
    for row in rows:
        if row is base or row.metric is None or base.metric is None:
            out.append(row)
            continue
        difference = row.metric - base.metric
        noise = within_noise(difference, row.metric_std, base.metric_std)
        verdict = None if noise is None else "within noise" if noise else "beyond noise"
        out.append(replace(row, difference=difference, noise=verdict))
    return out


def study_rows(out: Path, plan: Plan | None = None) -> list[StudyRow]:
    """The table of the study in ``out``, finished or not (nothing is trained)."""
    plan = plan or read_plan(out)
    measured = read_measured(out)
    rows = []
    for variant in plan.variants:
        trials = [Trial.of(out, variant, seed) for seed in plan.seeds]
        results = [read_results(t.results_csv, plan.task) for t in trials]
        row = variant_row(variant, [t.state() for t in trials], results)
        size = measured.get(variant.name, {})
        rows.append(replace(row, parameters=size.get("parameters"), gflops=size.get("gflops"), task=plan.task))
    return with_differences(rows)


def read_measured(out: Path) -> dict:
    try:
        return json.loads((out / MEASURED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _value(mean: float | None, std: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _ints(values: list[int] | None) -> str:
    return ",".join(map(str, values)) if values else ""


def table_cells(rows: list[StudyRow]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", *metric_labels(rows[0].task if rows else None), "diff", "noise", "params", "GFLOPs",
              "epochs", "best epoch", "time s", "status"]
    body = [[row.variant, _value(row.metric, row.metric_std), _value(row.map50, row.map50_std),
             "" if row.difference is None else f"{row.difference:+.4f}", row.noise or "",
             "" if row.parameters is None else f"{row.parameters:,}", "" if row.gflops is None else f"{row.gflops:.2f}",
             _ints(row.epochs),
             _ints(row.best_epoch), "" if row.seconds is None else f"{row.seconds:.0f}", row.status.partition(":")[0]]
            for row in rows]
    return header, body


def render(rows: list[StudyRow], fmt: str) -> str:
    """The rows as ``table`` (aligned), ``markdown``, ``csv`` or ``json`` (a list of objects)."""
    if fmt == "json":
        return json.dumps([asdict(row) for row in rows], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _ints(v) if isinstance(v, list) and k != "edits" else " ".join(v)
                             if isinstance(v, list) else v for k, v in asdict(row).items()})
        return buffer.getvalue()
    header, body = table_cells(rows)
    reasons = [f"{row.variant}: {row.status}" for row in rows if ":" in row.status]  # the table says the word only
    if fmt == "markdown":
        return "\n".join(markdown_lines(header, body, reasons))
    return "\n".join(aligned_lines(header, body) + reasons)
