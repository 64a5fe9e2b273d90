"""What a component declares, read from its source text without importing it (and torch).

A component's `get_params()` and `constraints()` that return a mapping literal, optionally spreading another
class's (`{**InMemoryProblem.constraints(), "fractions": FRACTIONS}`), are read with `ast` from the module an
entry point names, so that a misspelt key or a value out of range of a model or a problem is refused before
torch is imported. Values are literals, arithmetic on numbers, module-level constants and calls of the
constraint classes of pyrosys.configuration.constraints, evaluated over the syntax tree (never `eval`).
Anything else (computed values, a class found only by importing) reads as None: the component is then
checked after it is imported, as before. The same reading gives the names of a module-level table
(the losses and metrics of pyrosys.objectives).
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import operator
from pathlib import Path
from typing import Any

from pyrosys.configuration import constraints


def module_file(module: str) -> Path | None:
    """The source file of a module, found importing at most its top-level package (never the packages between,
    whose __init__ may import a component and so torch)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(".".join(parts[:2]))
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) <= 2:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for place in spec.submodule_search_locations or []:
        path = Path(place).joinpath(*parts[2:])
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _class_node(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name), None)


def _imported_from(tree: ast.Module, name: str, package: str) -> str | None:
    """The module a `from X import name` of this module reads `name` from (relative imports resolved)."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((alias.asname or alias.name) == name for alias in node.names):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                return f"{base}.{node.module}" if node.module else base
            return node.module
    return None


def _located(name: str, module: str, tree: ast.Module) -> str | None:
    """`module:Class` of a class name a module uses: its own class, or one it imports by name."""
    if _class_node(tree, name) is not None:
        return f"{module}:{name}"
    source = _imported_from(tree, name, module.rpartition(".")[0])
    return f"{source}:{name}" if source else None


class _Unknown(Exception):
    """A value that cannot be told without running the component's code."""


def _parsed(module: str) -> ast.Module | None:
    """A module's syntax tree (None where its source cannot be read), parsed once per version of its file."""
    path = module_file(module)
    try:
        return _parse(path, path.stat().st_mtime_ns) if path else None
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def _parse(path: Path, version: int) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _assigned(tree: ast.Module, name: str) -> ast.expr | None:
    """The value the one module-level `NAME = value` (or `NAME: type = value`) gives; None where the name is
    bound elsewhere too (a second assignment may change it)."""
    values = [node.value for node in tree.body
              if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets))
              or (isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name)
                  and node.target.id == name)]
    return values[0] if len(values) == 1 else None


def _named(name: str, module: str, tree: ast.Module, depth: int) -> Any:
    """A name a declaration uses: a constraint class, or a module-level constant of this module or one it imports."""
    value = _assigned(tree, name)
    if value is not None:
        return _value(value, module, tree, depth + 1)
    source = _imported_from(tree, name, module.rpartition(".")[0])
    found = getattr(constraints, name, None) if source == constraints.__name__ else None
    if isinstance(found, type) and issubclass(found, constraints.Constraint):
        return found
    other = _parsed(source) if source and depth < 8 else None
    value = _assigned(other, name) if other else None
    if value is None:
        raise _Unknown(name)
    return _value(value, source, other, depth + 1)


ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow,
              ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _value(node: ast.expr, module: str, tree: ast.Module, depth: int) -> Any:
    """A literal, arithmetic on numbers, a module-level constant, or a call of a constraint class with such
    arguments, evaluated over the syntax tree (never `eval`); anything else raises _Unknown."""
    def read(item: ast.expr) -> Any:
        return _value(item, module, tree, depth)

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return (list if isinstance(node, ast.List) else tuple)(read(item) for item in node.elts)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {read(key): read(value) for key, value in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and type(node.op) in ARITHMETIC:
        operand = read(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return ARITHMETIC[type(node.op)](operand)
    if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
        left, right = read(node.left), read(node.right)
        if all(isinstance(side, (int, float)) and not isinstance(side, bool) for side in (left, right)) and not (
                isinstance(node.op, ast.Pow) and abs(right) > 64):
            return ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Name) and depth < 8:
        return _named(node.id, module, tree, depth)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not any(
            isinstance(a, ast.Starred) for a in node.args) and all(k.arg for k in node.keywords):
        cls = _named(node.func.id, module, tree, depth)
        if isinstance(cls, type) and issubclass(cls, constraints.Constraint):
            return cls(*map(read, node.args), **{k.arg: read(k.value) for k in node.keywords})
    raise _Unknown(ast.dump(node)[:80])


def _mapping(node: ast.expr, method: str, module: str, tree: ast.Module, depth: int) -> dict | None:
    """A mapping literal, with `**Other.<method>()` spreads read from Other's declaration."""
    if not isinstance(node, ast.Dict):
        return None
    found: dict = {}
    for key, value in zip(node.keys, node.values):
        if key is None:
            call = value
            if not (isinstance(call, ast.Call) and not call.args and isinstance(call.func, ast.Attribute)
                    and call.func.attr == method and isinstance(call.func.value, ast.Name)):
                return None
            where = _located(call.func.value.id, module, tree)
            spread = _declared(where, method, depth + 1) if where else None
            if spread is None:
                return None
            found.update(spread)
            continue
        try:
            found[_value(key, module, tree, depth)] = _value(value, module, tree, depth)
        except (_Unknown, TypeError, ValueError, ArithmeticError):
            return None
    return found


def _declared(where: str, method: str, depth: int) -> dict[str, Any] | None:
    """The mapping `module:Class`'s own `method()` returns, read from its source; None where that cannot be
    told without running it (the method is inherited from several bases, computed, or not in a file)."""
    module, _, name = where.partition(":")
    tree = _parsed(module) if depth < 8 else None
    cls = _class_node(tree, name) if tree else None
    found = next((node for node in (cls.body if cls else []) if isinstance(node, ast.FunctionDef)
                  and node.name == method), None)
    if cls is not None and found is None:             # inherited: from the one base class, if there is one
        base = _located(cls.bases[0].id, module, tree) if len(cls.bases) == 1 and isinstance(
            cls.bases[0], ast.Name) else None
        return _declared(base, method, depth + 1) if base else None
    body = [statement for statement in (found.body if found else [])
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    return _mapping(body[0].value, method, module, tree, depth)


def declared_params(where: str) -> dict[str, Any] | None:
    """The defaults `module:Class`'s get_params() returns, read from its source (None: known only by importing)."""
    return _declared(where, "get_params", 0)


def read_constraints(where: str) -> dict[str, constraints.Constraint] | None:
    """The constraints `module:Class`'s constraints() returns, built from its source without importing the
    module (None: known only by importing); a class that declares none has none, as Problem and Model say."""
    declared = _declared(where, "constraints", 0)
    if declared is None or not all(isinstance(c, constraints.Constraint) for c in declared.values()):
        return None
    return declared


def declared_names(module: str, table: str) -> list[str] | None:
    """The keys of a module-level dict literal (`LOSSES = {"mse": mse, ...}`), read from the module's source
    without importing it; None where the table is not such a literal."""
    tree = _parsed(module)
    node = _assigned(tree, table) if tree else None
    if not isinstance(node, ast.Dict) or not all(isinstance(k, ast.Constant) and isinstance(k.value, str)
                                                 for k in node.keys):
        return None
    return [key.value for key in node.keys]
