"""``yamlforge compare``: measures model YAMLs side by side, one compare_runner.py subprocess per model.

A YAML that does not build is one failed row; the others are still measured. Differences are to the first
model (the first row that measured), in the order given. Without ``--imgsz`` each model is measured at the size its
task's own trainer trains at (640; 224 for classification), which its row carries.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import YamlforgeError
from ..tables import aligned_lines, markdown_lines
from ..target_python import RUNNERS, resolve_python, run_runner
from ..targets import Target
from .verify import check_options, resolve_yaml

RUNNER = RUNNERS / "compare_runner.py"
TIMEOUT = 900  # seconds per model
FORMATS = ("table", "markdown", "csv", "json")
METRICS = ("layers", "parameters", "gflops", "latency_ms", "peak_mib")  # each gets a difference to the first row
SCHEMA_ID = "yamlforge.compare/1"
MEMORY_BATCH = 2  # the "peak memory of one forward+backward at batch 2"


@dataclass
class Measurement:
    """One model: its measurements, or the error that stopped them."""

    model: str
    yaml: str
    imgsz: int | None = None
    layers: int | None = None
    parameters: int | None = None
    gflops: float | None = None
    latency_ms: float | None = None
    latency_runs: int | None = None
    peak_mib: float | None = None
    memory_method: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_output_format(fmt: str) -> None:
    """``--format``: how the comparison is printed (``FORMATS``)."""
    if fmt not in FORMATS:
        raise YamlforgeError(f"--format {fmt} is not one of {', '.join(FORMATS)}", where="--format")


def compare(yamls: list[Path], target: Target, *, imgsz: int | None = None, batch: int = MEMORY_BATCH, runs: int = 10,
            python: str | None = None, progress: Callable[[str], None] = lambda line: None) -> list[Measurement]:
    """Measure each YAML in its own subprocess (``imgsz`` None: at its task's usual size); bad input (a missing file,
    --imgsz) raises before any runs."""
    check_options(imgsz=32 if imgsz is None else imgsz, batch=batch)
    if runs < 1:
        raise YamlforgeError(f"--runs {runs} must be at least 1", where="--runs")
    if not yamls:
        raise YamlforgeError("give at least one model YAML", where="MODELS")
    resolved = [resolve_yaml(y, target) for y in yamls]
    python = resolve_python(python)
    rows = []
    for n, (given, yaml) in enumerate(zip(yamls, resolved), start=1):
        progress(f"compare [{n}/{len(yamls)}] {given} ...")
        rows.append(measure_one(str(given), yaml, target, imgsz=imgsz, batch=batch, runs=runs, python=python))
        progress(f"compare [{n}/{len(yamls)}] {given}: {summary(rows[-1])}")
    return rows


def measure_one(given: str, yaml: str, target: Target, *, imgsz: int | None, batch: int, runs: int,
                python: str) -> Measurement:
    size = ["--usual-imgsz"] if imgsz is None else ["--imgsz", str(imgsz)]
    args = ["--mode", "compare", "--yaml", yaml, *size, "--batch", str(batch), "--runs", str(runs)]
    answer = run_runner(RUNNER, args, python=python, timeout=TIMEOUT, target=target)
    row = Measurement(model=Path(given).stem, yaml=yaml)
    if not answer.ok:
        row.error = f"{answer.failure('compare')} ({answer.tail(1, empty='no output')})"
        return row
    if answer.failed_check is not None:
        row.error = f"{answer.failed_check['name']}: {answer.failed_check['message']}"
        return row
    totals = answer.data.get("totals") or {}
    row.imgsz = answer.data.get("imgsz")
    for name in ("layers", "parameters", "gflops", "latency_ms", "latency_runs", "peak_mib", "memory_method"):
        setattr(row, name, totals.get(name))
    return row


def summary(row: Measurement) -> str:
    if not row.ok:
        return f"failed: {row.error}"
    return (f"{row.parameters:,} parameters, {row.gflops:.2f} GFLOPs at {row.imgsz}, {row.latency_ms:.1f} ms, "
            f"{row.peak_mib:.0f} MiB")


# ------------------------------------------------------------------ rendering


def differences(rows: list[Measurement]) -> list[dict[str, float | None]]:
    """Per row, each metric minus the first measured row's (None for the first row and failed rows)."""
    base = next((r for r in rows if r.ok), None)
    out = []
    for row in rows:
        if base is None or row is base or not row.ok:
            out.append(dict.fromkeys(METRICS))
        else:
            out.append({m: _round(getattr(row, m) - getattr(base, m)) for m in METRICS})
    return out


def _round(value):
    return round(value, 3) if isinstance(value, float) else value


def _cell(value, delta, digits: str) -> str:
    """``value`` and, after the first row, its signed difference and ratio: ``32,970,476 +1,234 (+0.0%)``."""
    def number(v):
        return f"{v:,}" if isinstance(v, int) else f"{v:,.{digits}f}"

    if delta is None:
        return number(value)
    base = value - delta
    ratio = f" ({delta / base:+.1%})" if base else ""
    return f"{number(value)} {'+' if delta >= 0 else '-'}{number(abs(delta))}{ratio}"


COLUMNS = (("layers", "0"), ("parameters", "0"), ("gflops", "2"), ("latency_ms", "1"), ("peak_mib", "0"))


def sizes(rows: list[Measurement], imgsz: int | None) -> str:
    """The size(s) measured at: ``--imgsz``, else each task's own (``224/640`` when the models' tasks differ)."""
    return str(imgsz) if imgsz is not None else "/".join(str(s) for s in sorted({r.imgsz for r in rows if r.imgsz}))


def table_cells(rows: list[Measurement], imgsz: int | None, batch: int) -> tuple[list[str], list[list[str]]]:
    runs = next((r.latency_runs for r in rows if r.ok), None)
    header = ["model", "layers", "parameters", f"GFLOPs@{sizes(rows, imgsz)}", f"latency ms (b1, median of {runs})",
              f"peak MiB (fwd+bwd, b{batch})"]
    body = []
    for row, delta in zip(rows, differences(rows)):
        if not row.ok:
            body.append([row.model, "failed"] + [""] * (len(header) - 2))
            continue
        body.append([row.model] + [_cell(getattr(row, m), delta[m], f) for m, f in COLUMNS])
    return header, body


def render(rows: list[Measurement], fmt: str, *, imgsz: int | None, batch: int) -> str:
    """The rows as ``table`` (plain, aligned), ``markdown`` (a GitHub table), ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps({"schema": SCHEMA_ID, "imgsz": imgsz, "batch": batch,
                           "rows": [{**asdict(r), "ok": r.ok, "difference": d}
                                    for r, d in zip(rows, differences(rows))]}, indent=2)
    if fmt == "csv":
        return _csv(rows)
    header, body = table_cells(rows, imgsz, batch)
    errors = [f"{row.model}: {row.error}" for row in rows if not row.ok]
    if fmt == "markdown":
        return "\n".join(markdown_lines(header, body, errors))
    return "\n".join(aligned_lines(header, body) + errors)


def _csv(rows: list[Measurement]) -> str:
    out = io.StringIO()
    names = ["model", "yaml", "imgsz", *METRICS, "latency_runs", "memory_method", "error", *(f"d_{m}" for m in METRICS)]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row, delta in zip(rows, differences(rows)):
        writer.writerow({**asdict(row), **{f"d_{m}": v for m, v in delta.items()}})
    return out.getvalue()
