"""``verify --export onnx``: runs export_runner.py in the target's Python and adds its ``export`` check to a report."""

from __future__ import annotations

from ..errors import YamlforgeError
from ..target_python import RUNNERS, RunnerAnswer, run_runner
from ..targets import Target
from .verify import Check, VerifyReport

RUNNER = RUNNERS / "export_runner.py"
FORMATS = ("onnx",)
TIMEOUT = 900  # seconds: a build, an export and an onnxruntime run of one model on CPU


def check_export_format(fmt: str | None) -> None:
    """``--export``: the format the model is exported to (None: no export)."""
    if fmt is not None and fmt not in FORMATS:
        raise YamlforgeError(f"--export {fmt} is not a format yamlforge exports to ({', '.join(FORMATS)})",
                             where="--export", hint="--export onnx")


def add_export_check(report: VerifyReport, target: Target, *, imgsz: int, log: bool = False) -> Check:
    """Export ``report``'s model with the target's own exporter; appends (and returns) the ``export`` check.

    ``log`` keeps the user's settings as they are (verify's ``--log``), as for the verify run before it.
    """
    if not report.ok:
        check = Check("export", "skip", "not run: an earlier check failed")
    else:
        args = ["--mode", "export", "--yaml", report.yaml,
                "--imgsz", str(imgsz)]
        answer = run_runner(RUNNER, args, python=report.python, timeout=TIMEOUT, target=target, log=log)
        check = _export_check(answer)
        report.notes.extend((answer.data or {}).get("notes") or [])
    report.checks.append(check)
    return check


def _export_check(answer: RunnerAnswer) -> Check:
    """The runner's ``export`` check, or its first failed check (import, build) renamed, or why it said nothing."""
    if not answer.ok:
        return Check("export", "fail", answer.failure("export"), details={"stderr": answer.tail(15)})
    found = next((c for c in answer.data.get("checks", []) if c["name"] == "export"), None)
    if found is not None:
        return Check.from_dict(found)
    failed = Check.from_dict(answer.failed_check)
    return Check("export", "fail", f"{failed.name}: {failed.message}", hint=failed.hint, where=failed.where)
