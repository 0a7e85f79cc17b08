"""Every function in yamlforge/ reads at once: radon cyclomatic grade C or better, and at most 60 lines."""

from __future__ import annotations

import functools
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Function

PACKAGE = Path(__file__).resolve().parent.parent / "yamlforge"
MAX_LINES = 60
WORST_GRADE = "C"


@functools.cache
def functions() -> list[tuple[str, Function]]:
    """``(relative path, function)`` for every function and method radon sees in the package."""
    return [(path.relative_to(PACKAGE.parent).as_posix(), block)
            for path in sorted(PACKAGE.rglob("*.py"))
            for block in cc_visit(path.read_text(encoding="utf-8")) if isinstance(block, Function)]


def test_every_function_is_grade_c_or_better():
    offenders = [f"{path}:{f.lineno} {f.fullname} {cc_rank(f.complexity)} ({f.complexity})"
                 for path, f in functions() if cc_rank(f.complexity) > WORST_GRADE]
    assert not offenders, "too complex (radon cc):\n" + "\n".join(offenders)


def test_every_function_is_at_most_60_lines():
    offenders = [f"{path}:{f.lineno} {f.fullname} {f.endline - f.lineno + 1} lines"
                 for path, f in functions() if f.endline - f.lineno + 1 > MAX_LINES]
    assert not offenders, f"longer than {MAX_LINES} lines:\n" + "\n".join(offenders)


def test_the_checks_see_what_they_check():
    """The walk finds the package's functions, methods included (an empty walk would pass anything)."""
    names = {(path, f.fullname) for path, f in functions()}
    assert ("yamlforge/specs.py", "load_spec") in names
    assert ("yamlforge/specs.py", "SpecRegistry.get") in names
    assert len(names) > 200
