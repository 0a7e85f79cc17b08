"""Tables fit the terminal without cutting what a user types next: module names, exports, layer modules."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from yamlforge.check.verify import VerifyReport, render_report
from yamlforge.cli import app
from yamlforge.tables import LEAST_SUMMARY, fit_table


def listed(columns: int) -> str:
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def bundled() -> list[dict]:
    return json.loads(CliRunner().invoke(app, ["list", "--json"]).stdout)


@pytest.mark.parametrize("columns", [80, 60])
def test_list_never_cuts_a_name_on_a_narrow_terminal(columns):
    out = listed(columns)
    words = set(re.split(r"[\s,]+", out))
    for row in bundled():
        assert row["name"] in words and set(row["exports"]) <= words, row["name"]
    assert "…" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= columns
    assert "summary" not in out.splitlines()[0]  # dropped first


def test_list_drops_the_other_descriptive_columns_in_order_at_60_columns():
    header = listed(60).splitlines()[0].split()
    assert header == ["name", "channels", "exports"]
    assert listed(80).splitlines()[0].split() == ["name", "role", "channels", "stride", "exports"]


def test_list_shortens_the_summary_where_there_is_room():
    out = listed(120)
    assert out.splitlines()[0].split()[-1] == "summary"
    assert "…" in out  # the summaries are longer than the room left
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 120


def table(*rows: tuple[str, ...], headers=("name", "note", "summary")) -> Table:
    built = Table(*headers, box=None, pad_edge=False)
    for row in rows:
        built.add_row(*row)
    return built


def printed(built: Table, width: int) -> list[str]:
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, soft_wrap=True).print(built)
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


LONG = "a summary that goes on " * 4


@pytest.mark.parametrize(("width", "expected"), [
    (200, ["name                        note  summary", f"HGBlock_BiLevelRoutingAttn  ok    {LONG.strip()}"]),
    (70, ["name                        note  summary",
          "HGBlock_BiLevelRoutingAttn  ok    a summary that goes on a summary th…"]),
    (40, ["name                        note", "HGBlock_BiLevelRoutingAttn  ok"]),
    (20, ["name                        note", "HGBlock_BiLevelRoutingAttn  ok"]),  # runs past the edge, uncut
], ids=["fits", "summary-shortened", "summary-dropped", "too-narrow-runs-past"])
def test_fit_table_gives_way_with_the_summary_only(width, expected):
    assert printed(fit_table(table(("HGBlock_BiLevelRoutingAttn", "ok", LONG)), width, give_way=("summary",)),
                   width) == expected


def test_fit_table_wraps_between_words_never_inside_one():
    lines = printed(fit_table(table(("SHSA", "keep, in_out, backbone_module", "s"), headers=("name", "note", "x")),
                              24), 24)
    assert lines == ["name  note             x", "SHSA  keep, in_out,    s", "      backbone_module"]


def test_fit_table_keeps_a_wrapped_summary():
    lines = printed(fit_table(table(("Block", "ok", "cannot adopt: " + LONG)), 30, give_way=("summary",), wrap=True),
                    30)
    assert lines[0].split() == ["name", "note", "summary"]
    assert " ".join(line[11:].strip() for line in lines[1:]) == ("cannot adopt: " + LONG).strip()
    assert LEAST_SUMMARY <= 30


def test_verify_layer_table_never_cuts_a_module_name():
    module = "RepNCSPELAN4_BiLevelRoutingAttention"
    report = VerifyReport.from_runner({
        "schema": "yamlforge.verify/1", "target": {"kind": "ultralytics", "version": "8.4.190", "root": "/r"},
        "yaml": "m.yaml", "imgsz": 64, "batch": 2, "python": "python", "checks": [], "ok": True, "notes": [],
        "layers": [{"index": 22, "from": [15, 18, 21], "module": module, "params": 12345678,
                    "shape": [[2, 64, 80, 80], [2, 128, 40, 40]], "stride": None}],
    })
    for width in (80, 60):
        buffer = io.StringIO()
        render_report(report, Console(file=buffer, width=width, no_color=True, soft_wrap=True))
        assert module in buffer.getvalue().split(), buffer.getvalue()
