"""Registers classes in a target's ``parse_model``: join its own channel collections, or add ``elif`` branches.

Every version shapes the row loop's if/elif chain the same way; what differs is data the shapes accept:
the base branch ``if m in X:`` (the one doing ``c1, c2 = ch[f], args[0]``) and its nested repeat branch
``if m in Y:`` (``args.insert(2, n)``) name their modules as a tuple (8.0), a set (8.1/8.2, YOLOv9), an inline
``frozenset({...})``, or a name bound earlier in parse_model (8.3+ ``base_modules = frozenset({...})``).

Recognising our own edits: ``in_out`` names live in the target's collections and ``custom`` branches are
``elif m in {NAME}:``; both are found again because *any* name parse_model already tests ``m`` against
(``m in {...}``, ``m is X``, through ``base_modules`` ...) counts as registered. The one branch shared by all
``keep`` modules is recognised by the comment on its line, ``# yamlforge: channel-keeping modules`` (plus its
shape, ``elif m in {...}:``), so later keep modules join its set instead of opening a second branch; likewise the
branch of the ``none`` modules (no channel argument), ``# yamlforge: modules without channel arguments``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import libcst as cst

from ... import specs
from ...errors import YamlforgeError
from ...resources import render
from .base import Edit, UnexpectedShape, edit_code, find_all
from .literals import append_names

KEEP_TEMPLATE = "parse_model/keep.py.j2"
NONE_TEMPLATE = "parse_model/none.py.j2"
DESCRIBE_TEMPLATE = "parse_model/describe.txt.j2"
KEEP_MARKER = "# yamlforge: channel-keeping modules"
NONE_MARKER = "# yamlforge: modules without channel arguments"
# channel rule -> (the comment marking its one shared branch, the template of that branch's body)
SHARED_BRANCHES = {"keep": (KEEP_MARKER, KEEP_TEMPLATE), "none": (NONE_MARKER, NONE_TEMPLATE)}
CUSTOM_MARKER = "# yamlforge"
# the spec's rules, and "host": a fusion class shares its host's rule (a backbone's branch is a "custom" one)
CHANNEL_RULES = (*specs.CHANNEL_RULES, "host")


@dataclass(frozen=True)
class Registration:
    """How one class becomes known to parse_model."""

    name: str  # class/factory name as used in YAML (e.g. "SHSA")
    channels: str  # one of CHANNEL_RULES
    repeats: bool = False  # in_out only: also join the target's repeat collection (args.insert(2, n); n = 1)
    body: str | None = None  # custom only: rendered python statements of the branch body
    host: str | None = None  # host only: the target class whose parse_model rule this class shares (fusions)

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"registration name {self.name!r} is not a Python identifier")
        if self.channels not in CHANNEL_RULES:
            raise ValueError(f"unknown channel rule {self.channels!r} (known: {', '.join(CHANNEL_RULES)})")
        if self.channels == "custom" and not self.body:
            raise ValueError(f"{self.channels} registration of {self.name!r} needs a branch body")
        if (self.channels == "host") != (self.host is not None):
            raise ValueError(f"registration of {self.name!r}: a host class is given exactly for channels 'host'")


# ----------------------------------------------------------------------------- shapes


def is_parse_model(node: cst.CSTNode) -> bool:
    """``def parse_model(...):``"""
    match node:
        case cst.FunctionDef(name=cst.Name("parse_model")):
            return True
    return False


def is_row_loop(node: cst.CSTNode) -> bool:
    """``for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):`` (the branch bodies use these names)."""
    match node:
        case cst.For(
            target=cst.Tuple([
                cst.Element(cst.Name("i")),
                cst.Element(cst.Tuple([
                    cst.Element(cst.Name("f")), cst.Element(cst.Name("n")),
                    cst.Element(cst.Name("m")), cst.Element(cst.Name("args")),
                ])),
            ]),
            iter=cst.Call(func=cst.Name("enumerate")),
        ):
            return True
    return False


def _is_base_assign(node: cst.CSTNode) -> bool:
    """``c1, c2 = ch[f], args[0]``"""
    match node:
        case cst.SimpleStatementLine([cst.Assign(
            targets=[cst.AssignTarget(cst.Tuple([cst.Element(cst.Name("c1")), cst.Element(cst.Name("c2"))]))],
            value=cst.Tuple([
                cst.Element(cst.Subscript(cst.Name("ch"), [cst.SubscriptElement(cst.Index(cst.Name("f")))])),
                cst.Element(cst.Subscript(cst.Name("args"), [cst.SubscriptElement(cst.Index(cst.Integer("0")))])),
            ]),
        )]):
            return True
    return False


def _is_repeat_insert(node: cst.CSTNode) -> bool:
    """``args.insert(2, n)``"""
    match node:
        case cst.SimpleStatementLine([cst.Expr(cst.Call(
            func=cst.Attribute(cst.Name("args"), cst.Name("insert")),
            args=[cst.Arg(cst.Integer("2")), cst.Arg(cst.Name("n"))],
        ))]):
            return True
    return False


def _branch_doing(node: cst.CSTNode, does: Callable[[cst.CSTNode], bool]) -> bool:
    """``if m in X:`` whose block holds a statement ``does`` accepts (as a direct statement)."""
    match node:
        case cst.If(
            test=cst.Comparison(cst.Name("m"), [cst.ComparisonTarget(cst.In())]),
            body=cst.IndentedBlock(body=statements),
        ):
            return any(does(statement) for statement in statements)
    return False


def is_base_branch(node: cst.CSTNode) -> bool:
    return _branch_doing(node, _is_base_assign)


def is_repeat_branch(node: cst.CSTNode) -> bool:
    return _branch_doing(node, _is_repeat_insert)


def shared_branch_rule(node: cst.CSTNode) -> str | None:
    """The rule of ``elif m in {...}:  # yamlforge: channel-keeping modules`` (or another of SHARED_BRANCHES)."""
    match node:
        case cst.If(
            test=cst.Comparison(cst.Name("m"), [cst.ComparisonTarget(cst.In(), cst.Set())]),
            body=cst.IndentedBlock(header=cst.TrailingWhitespace(comment=cst.Comment(comment))),
        ):
            return next((rule for rule, (marker, _) in SHARED_BRANCHES.items() if comment == marker), None)
    return None


def is_comparison_of_m(node: cst.CSTNode) -> bool:
    """``m <op> <comparator>`` (``m in X``, ``m is X`` ...)."""
    match node:
        case cst.Comparison(left=cst.Name("m")):
            return True
    return False


# ----------------------------------------------------------------------------- locating parse_model's parts


@dataclass(frozen=True)
class ParseModelShape:
    """The nodes of one parse_model that registration edits (identities within the module visited)."""

    function: cst.FunctionDef
    base_branch: cst.If  # ``if m in X:`` doing ``c1, c2 = ch[f], args[0]``
    base: cst.BaseExpression  # the literal holding the base modules (c1, c2 = ch[f], args[0])
    repeat: cst.BaseExpression | None  # the literal holding the repeat modules (args.insert(2, n)), if any
    repeat_branch: cst.If | None
    last_branch: cst.If  # the branch of the row loop's chain whose orelse is the final ``else:``
    shared_branches: dict[str, cst.If]  # rule -> yamlforge's branch shared by that rule's modules, where there
    registered: frozenset[str]  # every name parse_model already tests ``m`` against

    @property
    def keep_branch(self) -> cst.If | None:
        """yamlforge's channel-keeping branch, if already there."""
        return self.shared_branches.get("keep")


def _branches(chain: cst.If) -> Iterable[cst.If]:
    node: cst.BaseSuite | cst.If | cst.Else | None = chain
    while isinstance(node, cst.If):
        yield node
        node = node.orelse


def _bindings(statements: Sequence[cst.BaseStatement]) -> dict[str, cst.BaseExpression]:
    """``name = value`` statements of parse_model before its row loop (the last one wins, as at run time)."""
    bound = {}
    for statement in statements:
        match statement:
            case cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name(name))], value)]):
                bound[name] = value
    return bound


def _literal(comparator: cst.BaseExpression, bindings: dict[str, cst.BaseExpression]) -> cst.BaseExpression | None:
    """The tuple/set/list literal behind ``m in <comparator>``, looking through ``frozenset(...)`` and names."""
    if isinstance(comparator, cst.Name) and comparator.value in bindings:
        comparator = bindings[comparator.value]
    match comparator:
        case cst.Tuple() | cst.Set() | cst.List():
            return comparator
        # ``frozenset({...})`` (8.3+), also ``set(...)`` / ``tuple(...)`` of a literal
        case cst.Call(cst.Name("frozenset" | "set" | "tuple"),
                      [cst.Arg(cst.Tuple() | cst.Set() | cst.List() as literal)]):
            return literal
    return None


def _tested_names(function: cst.FunctionDef, bindings: dict[str, cst.BaseExpression]) -> frozenset[str]:
    """Names ``m`` is compared with anywhere in parse_model: ``m in {A, B}``, ``m is A``, ``m in base_modules``."""
    names = set()
    for comparison in find_all(function, is_comparison_of_m):
        for target in comparison.comparisons:
            if isinstance(target.operator, cst.In):
                literal = _literal(target.comparator, bindings)
                values = [e.value for e in literal.elements] if literal is not None else []
            elif isinstance(target.operator, (cst.Is, cst.Equal)):
                values = [target.comparator]
            else:
                continue
            names.update(v.value for v in values if isinstance(v, cst.Name))
    return frozenset(names)


def locate(function: cst.FunctionDef, registered: frozenset[str] | None = None) -> ParseModelShape:
    """Find the parts of ``def parse_model`` that registration edits, or raise :class:`UnexpectedShape` saying which.

    ``registered``, when the caller already knows it (a previous edit of the same apply), saves a search of the
    whole function for the names ``m`` is tested against.
    """
    statements = list(function.body.body)
    loop_index = next((i for i, s in enumerate(statements) if is_row_loop(s)), None)
    if loop_index is None:
        raise UnexpectedShape(function, "parse_model: expected the row loop 'for i, (f, n, m, args) in enumerate(...)'")
    loop = statements[loop_index]
    chain = next(
        (s for s in loop.body.body if isinstance(s, cst.If) and any(is_base_branch(b) for b in _branches(s))),
        None,
    )
    if chain is None:
        raise UnexpectedShape(
            loop, "parse_model: expected a branch 'if m in <modules>:' doing 'c1, c2 = ch[f], args[0]' in the row loop"
        )
    branches = list(_branches(chain))
    if not isinstance(branches[-1].orelse, cst.Else):
        raise UnexpectedShape(chain, "parse_model: expected the row loop's if/elif chain to end with 'else:'")
    base_branch = next(b for b in branches if is_base_branch(b))
    bindings = _bindings(statements[:loop_index])
    base = _literal(base_branch.test.comparisons[0].comparator, bindings)
    if base is None:
        raise UnexpectedShape(
            base_branch,
            "parse_model: expected the modules of 'if m in <modules>:' (c1, c2 = ch[f], args[0]) to be a tuple, "
            "a set, frozenset({...}) or a name bound to one of those before the row loop",
        )
    repeat_branch = next((s for s in base_branch.body.body if is_repeat_branch(s)), None)
    repeat = _literal(repeat_branch.test.comparisons[0].comparator, bindings) if repeat_branch else None
    return ParseModelShape(
        function=function,
        base_branch=base_branch,
        base=base,
        repeat=repeat,
        repeat_branch=repeat_branch,
        last_branch=branches[-1],
        shared_branches={rule: b for b in reversed(branches) if (rule := shared_branch_rule(b))},
        registered=_tested_names(function, bindings) if registered is None else registered,
    )


# ----------------------------------------------------------------------------- building nodes


def _statements(code: str, what: str) -> list[cst.BaseStatement]:
    try:
        statements = list(cst.parse_module(code).body)
    except cst.ParserSyntaxError as exc:
        raise YamlforgeError(
            f"{what} is not valid Python: {exc.message}", where=f"{what}, line {exc.raw_line}"
        ) from None
    if not statements:
        raise YamlforgeError(f"{what} is empty", where=what)
    return statements


def _elif(names: Sequence[str], body: Sequence[cst.BaseStatement], marker: str, orelse: cst.If | cst.Else) -> cst.If:
    """``elif m in {A, B}:  <marker>`` with ``body``, followed by ``orelse``."""
    test = cst.Comparison(
        left=cst.Name("m"),
        comparisons=[cst.ComparisonTarget(cst.In(), cst.Set([cst.Element(cst.Name(n)) for n in names]))],
    )
    header = cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(marker))
    return cst.If(test=test, body=cst.IndentedBlock(body=list(body), header=header), orelse=orelse)


def shared_body(rule: str) -> list[cst.BaseStatement]:
    """The body of the branch shared by ``rule``'s modules, from its template."""
    template = SHARED_BRANCHES[rule][1]
    return _statements(render(template), template)


# ----------------------------------------------------------------------------- the edits


class _ParseModelEdit(cst.CSTTransformer):
    """Base of the registration edits: visits only ``def parse_model`` and locates its parts before editing.

    ``rules`` says which registrations a subclass handles; :attr:`names` are those not yet registered (a name
    parse_model already tests ``m`` against is left alone, which is what makes every edit idempotent).
    """

    rules: tuple[str, ...] = ()

    def __init__(self, registrations: Sequence[Registration], registered: frozenset[str] | None = None):
        super().__init__()
        self._registered = registered
        self.registrations = [r for r in registrations if r.channels in self.rules]
        self.shape: ParseModelShape | None = None
        self.todo: list[Registration] = []  # not registered yet, first of each name, in the order given
        self._inside = False

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Module) or self._inside:
            return super().on_visit(node)
        if self.shape is None and is_parse_model(node):  # module level: only parse_model is entered
            self.shape = locate(node, self._registered)
            registered = set(self.shape.registered)
            for reg in self.registrations:
                if reg.name not in registered:
                    registered.add(reg.name)
                    self.todo.append(reg)
            self.check(self.shape)
            self._inside = True
            return super().on_visit(node)
        return False

    def on_leave(self, original_node, updated_node):
        if self.shape is not None and original_node is self.shape.function:
            self._inside = False
        return super().on_leave(original_node, updated_node)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.todo]

    def check(self, shape: ParseModelShape) -> None:
        """Raise :class:`UnexpectedShape` when parse_model lacks what this edit needs beyond :func:`locate`."""

    def run(self, module: cst.Module) -> cst.Module:
        updated = module.visit(self)
        if self.shape is None:
            raise UnexpectedShape(
                module, "no parse_model function found: expected a top-level 'def parse_model(d, ch, ...)'"
            )
        return updated


class JoinChannelCollections(_ParseModelEdit):
    """in_out: appends the class to the target's own base collection, and with ``repeats`` to its repeat collection.

    Where: the literal behind the row loop's ``if m in X:`` whose block does ``c1, c2 = ch[f], args[0]`` (tuple,
    set, ``frozenset({...})`` or ``base_modules``), so c2 is width-scaled exactly like the target's own layers;
    for ``repeats`` the nested ``if m in Y:`` doing ``args.insert(2, n)``. The name goes last, in the literal's
    layout (a new line before the closing brace of a one-per-line literal, ``, X`` otherwise).
    Twice is a no-op: the name is then tested by the base branch, so it counts as registered.
    """

    rules = ("in_out",)

    def check(self, shape):
        if shape.repeat is None and any(r.repeats for r in self.todo):
            raise UnexpectedShape(
                shape.repeat_branch or shape.base_branch,
                "parse_model: expected a nested 'if m in <modules>:' doing 'args.insert(2, n)' in the "
                "'c1, c2 = ch[f], args[0]' branch (repeats: fold)",
            )

    def visit_Module(self, node: cst.Module) -> None:
        self.default_indent = node.default_indent
        self.indents: list[str] = []  # of the blocks around the node visited, to measure a literal's lines

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.indents.append(self.default_indent if node.indent is None else node.indent)

    def leave_IndentedBlock(self, original_node, updated_node):
        self.indents.pop()
        return updated_node

    def _join(self, original_node, updated_node):
        if self.shape is None or not self.names:
            return updated_node
        if original_node is self.shape.base:
            return append_names(updated_node, self.names, "".join(self.indents))
        if original_node is self.shape.repeat:
            return append_names(updated_node, [r.name for r in self.todo if r.repeats], "".join(self.indents))
        return updated_node

    leave_Tuple = leave_Set = leave_List = _join


class AddKeepBranch(_ParseModelEdit):
    """keep: one ``elif m in {A, B}:  # yamlforge: channel-keeping modules`` branch for every channel-keeping class.

    Where: before the final ``else:`` of the row loop's if/elif chain; its body (``templates/parse_model/keep.py.j2``)
    passes the input width on: ``c2 = ch[f]``, ``args = [c2, *args]``. If the branch is already there (recognised
    by its comment and shape), new names join its set instead. Twice is a no-op: every name is then tested by that
    branch, so it counts as registered and nothing is left to add.
    """

    rules = ("keep",)

    def leave_Set(self, original_node, updated_node):
        shared = self.shape.shared_branches.get(self.rules[0]) if self.shape else None
        if self.names and shared is not None and original_node is shared.test.comparisons[0].comparator:
            return append_names(updated_node, self.names)
        return updated_node

    def leave_If(self, original_node, updated_node):
        rule = self.rules[0]
        if self.names and rule not in self.shape.shared_branches and original_node is self.shape.last_branch:
            branch = _elif(self.names, shared_body(rule), SHARED_BRANCHES[rule][0], updated_node.orelse)
            return updated_node.with_changes(orelse=branch)
        return updated_node


class AddNoChannelBranch(AddKeepBranch):
    """none: one ``elif m in {A, B}:  # yamlforge: modules without channel arguments`` branch for every class whose
    constructor takes no channel argument.

    Where: before the final ``else:`` (after the keep branch when both are added); its body
    (``templates/parse_model/none.py.j2``) is ``c2 = ch[f]`` and leaves the YAML args untouched, so the class is
    built as ``cls(*args)``. If the branch is already there, new names join its set. Twice is a no-op: every name
    is then tested by that branch, so it counts as registered.
    """

    rules = ("none",)


class AddCustomBranches(_ParseModelEdit):
    """custom (backbones too): one ``elif m in {NAME}:  # yamlforge`` branch per class, body from its spec.

    Where: before the final ``else:`` of the row loop's if/elif chain, in the order given (after the keep branch
    when both are added). Twice is a no-op: each name is then tested by its own branch, so it counts as registered.
    """

    rules = ("custom",)

    def leave_If(self, original_node, updated_node):
        if not self.names or original_node is not self.shape.last_branch:
            return updated_node
        orelse = updated_node.orelse
        for reg in reversed(self.todo):
            orelse = _elif(
                [reg.name], _statements(reg.body, f"the parse_model branch of '{reg.name}'"), CUSTOM_MARKER, orelse
            )
        return updated_node.with_changes(orelse=orelse)


class JoinHostConditions(JoinChannelCollections):
    """host: the class joins every condition of parse_model that tests ``m`` against its host class.

    Used for fusion variants (``RepC3_SHSA`` subclasses ``RepC3``), which must follow the host's own rule in that
    target version without copying it. Where: every collection the row loop tests ``m in`` that names the host
    (the base and repeat collections, ``frozenset({HGStem, HGBlock})``, ``base_modules`` ...) gets the class
    appended in its own layout, and every ``m is Host`` check (``if m is HGBlock: args.insert(4, n)``,
    ``if m is C3k2:``) becomes ``m in {Host, Class}``. A collection used by several conditions is extended once.
    Twice is a no-op: the class is then tested by parse_model, so it counts as registered.
    """

    rules = ("host",)

    def check(self, shape):
        self.joins: dict[int, list[str]] = {}  # id(literal) -> names to append
        self.checks: dict[int, list[str]] = {}  # id(``m is Host`` comparison) -> names to test as well
        hosts = {r.host for r in self.todo}
        statements = list(shape.function.body.body)
        loop_index = next(i for i, s in enumerate(statements) if is_row_loop(s))
        bindings = _bindings(statements[:loop_index])
        tested: set[str] = set()
        for comparison in find_all(shape.function, is_comparison_of_m):
            if len(comparison.comparisons) != 1:
                continue
            target = comparison.comparisons[0]
            if isinstance(target.operator, cst.In):
                literal = _literal(target.comparator, bindings)
                if literal is None:
                    continue
                found = {e.value.value for e in literal.elements if isinstance(e.value, cst.Name)} & hosts
                names = self.joins.setdefault(id(literal), [])
            elif isinstance(target.operator, cst.Is) and isinstance(target.comparator, cst.Name):
                found = {target.comparator.value} & hosts
                names = self.checks.setdefault(id(comparison), [])
            else:
                continue
            tested |= found
            names.extend(r.name for r in self.todo if r.host in found and r.name not in names)
        missing = sorted(hosts - tested)
        if missing:
            raise UnexpectedShape(shape.function, "parse_model: expected a condition testing 'm' against "
                                                  f"{missing[0]}, the host class whose rule a fusion shares")

    def _join(self, original_node, updated_node):
        names = self.joins.get(id(original_node)) if self.shape is not None else None
        return append_names(updated_node, names, "".join(self.indents)) if names else updated_node

    leave_Tuple = leave_Set = leave_List = _join

    def leave_Comparison(self, original_node, updated_node):
        names = self.checks.get(id(original_node)) if self.shape is not None else None
        if not names:
            return updated_node
        host = updated_node.comparisons[0].comparator
        members = cst.Set([cst.Element(cst.Name(n)) for n in (host.value, *names)])
        return updated_node.with_changes(comparisons=[cst.ComparisonTarget(cst.In(), members)])


# Applied in this order
EDITS: tuple[type[_ParseModelEdit], ...] = (
    JoinChannelCollections, AddKeepBranch, AddNoChannelBranch, AddCustomBranches, JoinHostConditions,
)


class _Registered:
    """The names parse_model tests ``m`` against in the module the last edit returned, so the next skips the search."""

    def __init__(self):
        self.module: cst.Module | None = None
        self.names: frozenset[str] = frozenset()

    def run(self, edit: type[_ParseModelEdit], registrations: Sequence[Registration], module: cst.Module) -> cst.Module:
        done = edit(registrations, self.names if module is self.module else None)
        updated = done.run(module)
        self.module, self.names = updated, done.shape.registered | set(done.names)
        return updated


def registration_edits(registrations: Sequence[Registration]) -> list[Edit]:
    """The edits making every registration in parse_model, as one coherent change (idempotent).

    Edits with nothing to register are left out; the first still runs alone, to check the shape of parse_model.
    """
    wanted = {r.channels for r in registrations}
    registered = _Registered()
    edits = [e for e in EDITS if wanted & set(e.rules)] or EDITS[:1]
    return [partial(registered.run, edit, registrations) for edit in edits]


def register_in_parse_model(code: str, registrations: Sequence[Registration], *, filename: str) -> str:
    """``code`` with every registration made in parse_model (see :func:`registration_edits`)."""
    return edit_code(code, registration_edits(registrations), filename=filename)


def describe_registration(reg: Registration) -> str:
    """The parse_model change ``reg`` makes, as text for ``yamlforge show``."""
    marker, template = SHARED_BRANCHES.get(reg.channels, (CUSTOM_MARKER, None))
    body = render(template) if template else reg.body or ""
    return render(DESCRIBE_TEMPLATE, reg=reg, body=body.rstrip("\n"), marker=marker).rstrip("\n")
