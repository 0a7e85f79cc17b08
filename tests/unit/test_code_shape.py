"""The package reads at once: functions grade C or better and at most 60 lines, classes at most 300, runner files
at most 400, CLI modules at most 300, and imports that run one way (no cycles; runners import only their siblings;
the CLI reaches no library internals)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from radon.complexity import cc_rank, cc_visit
from radon.visitors import Function

PACKAGE = Path(__file__).resolve().parents[2] / "yamlforge"
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


# --- the package's architecture: one-way imports, runners standalone, files and classes of a readable size ---

RUNNERS = PACKAGE / "runners"
MAX_RUNNER_LINES = 400
MAX_CLASS_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere (top level or inside a function), as dotted names."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def ignoring_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exporting its modules is not a cycle with them: drop module -> own package."""
    return {name: {other for other in targets if not name.startswith(f"{other}.")} for name, targets in graph.items()}


def test_no_import_cycles_in_the_package():
    found = cycles(ignoring_packages(import_graph()))
    assert not found, "import cycles (function-level imports count too):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_runners_import_nothing_from_yamlforge_but_their_siblings():
    """A runner runs in the target's Python, where yamlforge may be missing: only sibling files are importable."""
    offenders = {name: sorted(other for other in targets if not other.startswith("yamlforge.runners"))
                 for name, targets in import_graph().items() if name.startswith("yamlforge.runners.")}
    assert not any(offenders.values()), offenders
    assert "yamlforge.runners.verify_runner" in import_graph()["yamlforge.runners.weights_runner"]


MAX_MODULE_LINES = 600


def test_every_module_is_at_most_600_lines():
    """A module past a screenful of screens holds more than one concern: split it by concern (compile.py was 929)."""
    sizes = {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in PACKAGE.rglob("*.py")}
    assert len(sizes) > 50
    assert not {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}, sizes


def test_runner_files_are_at_most_400_lines():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in RUNNERS.glob("*.py")}
    assert len(sizes) >= 5
    assert not {name: n for name, n in sizes.items() if n > MAX_RUNNER_LINES}, sizes


def test_runner_siblings_cannot_clash_with_a_checkouts_top_level_packages():
    """The runner folder is sys.path[0] next to a checkout's own ``utils``/``models``: every name is ours alone."""
    names = [path.stem for path in RUNNERS.glob("*.py") if path.stem != "__init__"]
    assert all(name.endswith("_runner") or name.startswith("yf_") for name in names), names


def test_every_class_is_at_most_300_lines():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} "
                 f"{node.end_lineno - node.lineno + 1} lines"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not offenders, f"classes longer than {MAX_CLASS_LINES} lines:\n" + "\n".join(offenders)


# --- the CLI: a thin shell, one small module per command family, calling the library's entry functions ---

CLI = "yamlforge.cli"
MAX_CLI_LINES = 300
# The steps a command must not string together itself: the patch engine's (plan, changeset, writer, manifest, lock,
# journal, rebase, codemods), the compiler's (load, graph, layout, strides, widths, layermap), apply's own checks
# (the channel-rule probe, the verify probe model) and the runner transport. A command calls the one function that
# strings them (yamlforge.operations, or a subsystem's entry: verify, compile_yaml, load_weights, adopt, ...) and
# renders what it returns. A deny-list, not an allow-list: a new library module is open to the CLI until it is
# one of these steps.
CLI_DENIED = (
    "yamlforge.patch.plan", "yamlforge.patch.changeset", "yamlforge.patch.writer", "yamlforge.patch.manifest",
    "yamlforge.patch.lock", "yamlforge.patch.journal", "yamlforge.patch.rebase", "yamlforge.patch.codemods",
    "yamlforge.modelyaml.load", "yamlforge.modelyaml.graph", "yamlforge.modelyaml.layout",
    "yamlforge.modelyaml.strides", "yamlforge.modelyaml.widths", "yamlforge.modelyaml.layermap",
    "yamlforge.adopt.rulecheck", "yamlforge.check.probe", "yamlforge.target_python", "yamlforge.runners",
)


def internals_imported_by_the_cli(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """``{cli module: [denied modules it imports]}`` for the CLI modules that import any."""
    found = {name: sorted(other for other in targets if any(other == denied or other.startswith(f"{denied}.")
                                                            for denied in CLI_DENIED))
             for name, targets in graph.items() if name == CLI or name.startswith(f"{CLI}.")}
    return {name: denied for name, denied in found.items() if denied}


def test_cli_modules_import_no_library_internals():
    assert internals_imported_by_the_cli(import_graph()) == {}
    assert "yamlforge.operations.patching" in import_graph()["yamlforge.cli.patching"]  # the walk sees the CLI


def test_the_cli_import_check_finds_an_internal():
    graph = {"yamlforge.cli.patching": {"yamlforge.patch.writer", "yamlforge.errors"},
             "yamlforge.cli": {"yamlforge.cli.patching"},
             "yamlforge.operations.patching": {"yamlforge.patch.writer"},  # the library may
             "yamlforge.cli.checks": {"yamlforge.runners.yf_facts", "yamlforge.check.verify"}}
    assert internals_imported_by_the_cli(graph) == {"yamlforge.cli.patching": ["yamlforge.patch.writer"],
                                                    "yamlforge.cli.checks": ["yamlforge.runners.yf_facts"]}


def test_cli_modules_are_at_most_300_lines():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in (PACKAGE / "cli").glob("*.py")}
    assert len(sizes) >= 5
    assert not {name: n for name, n in sizes.items() if n > MAX_CLI_LINES}, sizes


# --- layers: what everything stands on imports nothing from the subsystems standing on it ---

LOWER = ("yamlforge.errors", "yamlforge.resources", "yamlforge.specs", "yamlforge.targets")
UPPER = ("yamlforge.adopt", "yamlforge.check", "yamlforge.cli", "yamlforge.modelyaml", "yamlforge.patch",
         "yamlforge.weights")
# Subsystem modules the lower ones may use: each imports nothing above itself (the walk goes on through it).
BELOW_ITS_FOLDER = {"yamlforge.modelyaml.load"}  # YAML nodes with line numbers; it imports only errors


def upward_imports(graph: dict[str, set[str]], lower=LOWER, upper=UPPER, allowed=BELOW_ITS_FOLDER) -> list[str]:
    """``lower -> upper`` for each subsystem module a lower module reaches through its imports, directly or not."""
    found = []
    for start in lower:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for other in sorted(graph.get(stack.pop(), ())):
                if other in seen:
                    continue
                seen.add(other)
                stack.append(other)
                if other not in allowed and any(other == u or other.startswith(f"{u}.") for u in upper):
                    found.append(f"{start} -> {other}")
    return sorted(found)


def test_no_upward_import_between_subpackages():
    """specs, targets, errors and resources sit below adopt/, check/, modelyaml/, patch/, weights/ and the CLI."""
    assert all(name in import_graph() for name in LOWER)
    found = upward_imports(import_graph())
    assert not found, "upward imports (function-level imports count too):\n" + "\n".join(found)


def test_the_upward_import_check_finds_one():
    """As specs.py once imported adopt/source.py inside a function, and through a module in between."""
    direct = {"yamlforge.specs": {"yamlforge.adopt.source"}}
    assert upward_imports(direct) == ["yamlforge.specs -> yamlforge.adopt.source"]
    graph = {"yamlforge.targets": {"yamlforge.helper"}, "yamlforge.helper": {"yamlforge.check.verify"},
             "yamlforge.errors": {"yamlforge.modelyaml.load"}, "yamlforge.modelyaml.load": {"yamlforge.patch.plan"}}
    assert upward_imports(graph) == ["yamlforge.errors -> yamlforge.patch.plan",
                                     "yamlforge.targets -> yamlforge.check.verify"]
