"""Runs inside the target's Python (which has matplotlib): a study's plots, as PNG files a paper can use.

``yamlforge.study.plots`` runs it as ``python plot_runner.py --spec JSON``; the spec names the output folder and,
per row, its name, GFLOPs, metric, whether it is on the Pareto front, and each trial's per-epoch metric (as the study
read it from the trainer's own ``results.csv``). It draws ``metric_vs_gflops.png`` (the front marked) and
``curves.png`` (every trial's validation curve) and answers ``{"written": [paths]}``. It computes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.plot_runner (the tests)
    from . import yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts

SCHEMA = "yamlforge.plots/1"


def metric_vs_gflops(plt, rows: list[dict], path: Path) -> Path | None:
    points = [row for row in rows if row["gflops"] is not None and row["metric"] is not None]
    if not points:
        return None
    figure, axes = plt.subplots(figsize=(6, 4), dpi=150)
    axes.scatter([p["gflops"] for p in points], [p["metric"] for p in points], color="tab:blue", zorder=2)
    for point in points:
        axes.annotate(point["variant"], (point["gflops"], point["metric"]), textcoords="offset points", xytext=(4, 4),
                      fontsize=8)
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["gflops"])
    axes.plot([p["gflops"] for p in front], [p["metric"] for p in front], color="tab:red", marker="o",
              label="Pareto front", zorder=3)
    axes.set_xlabel("GFLOPs")
    axes.set_ylabel("mAP50-95")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def curves(plt, rows: list[dict], path: Path) -> Path | None:
    figure, axes = plt.subplots(figsize=(6, 4), dpi=150)
    drawn = 0
    for row in rows:
        for trial, curve in row["trials"].items():
            if curve["epochs"]:
                axes.plot(curve["epochs"], curve["values"], label=trial)
                drawn += 1
    if not drawn:
        plt.close(figure)
        return None
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation mAP50-95")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def draw(spec: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    written = [metric_vs_gflops(plt, spec["rows"], out / "metric_vs_gflops.png"),
               curves(plt, spec["rows"], out / "curves.png")]
    return {"schema": SCHEMA, "written": [str(path) for path in written if path is not None]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the plots' JSON (output folder, rows)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    yf_facts.print_one_json(lambda: draw(json.loads(args.spec)), SCHEMA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
