"""A study's PNG plots, drawn by plot_runner.py in the target's Python (it has matplotlib; yamlforge needs none)."""

from __future__ import annotations

import json
from pathlib import Path

from ..target_python import RUNNERS, run_runner
from .plan import Plan, Variant, trial_name
from .report import StudyRow
from .trial import Trial, read_curve

RUNNER = RUNNERS / "plot_runner.py"
PLOTS = "plots"
TIMEOUT = 300


def pareto_front(rows: list[StudyRow]) -> set[str]:
    """The rows no other row beats: none has at most their GFLOPs and at least their metric, one of them strictly."""
    points = [r for r in rows if r.gflops is not None and r.metric is not None]
    return {r.variant for r in points
            if not any(o.gflops <= r.gflops and o.metric >= r.metric and (o.gflops, o.metric) != (r.gflops, r.metric)
                       for o in points)}


def draw_plots(rows: list[StudyRow], plan: Plan, out: Path, *, python: str) -> tuple[list[Path], str | None]:
    """Draw ``DIR/plots/*.png``; (the files written, why not when the runner failed)."""
    front = pareto_front(rows)
    variants = {variant.name: variant for variant in plan.variants}
    spec = {"out": str((out / PLOTS).resolve()),
            "rows": [{"variant": row.variant, "gflops": row.gflops, "metric": row.metric,
                      "pareto": row.variant in front, "trials": _curves(variants[row.variant], plan, out)}
                     for row in rows]}
    answer = run_runner(RUNNER, ["--spec", json.dumps(spec)], python=python, timeout=TIMEOUT)
    if not answer.ok:
        return [], answer.reason(1)
    return [Path(path) for path in answer.data["written"]], None


def _curves(variant: Variant, plan: Plan, out: Path) -> dict[str, dict]:
    """Each trial of ``variant``: its per-epoch metric from its ``results.csv`` (none for a refused row)."""
    if variant.refused is not None:
        return {}
    return {trial_name(variant, seed): read_curve(Trial.of(out, variant, seed).results_csv, plan.task)
            for seed in plan.seeds}
