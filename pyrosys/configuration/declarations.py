"""The parameters a component declares, read from its source text without importing it (and torch).

A component's `get_params()` that returns a literal mapping, optionally spreading another class's
(`{**InMemoryProblem.get_params(), "fractions": [...]}`), is read with `ast` from the module an entry point
names, so that a misspelt key of a model or a problem is refused before torch is imported. Anything
else (computed defaults, a class found only by importing) reads as None: the component is then checked
after it is imported, as before.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any


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


def _literal(node: ast.expr, module: str, tree: ast.Module, depth: int) -> dict | None:
    """A mapping literal, with `**Other.get_params()` spreads read from Other's declaration."""
    if not isinstance(node, ast.Dict):
        return None
    found: dict = {}
    for key, value in zip(node.keys, node.values):
        if key is None:
            call = value
            if not (isinstance(call, ast.Call) and not call.args and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "get_params" and isinstance(call.func.value, ast.Name)):
                return None
            where = _located(call.func.value.id, module, tree)
            spread = declared_params(where, depth + 1) if where else None
            if spread is None:
                return None
            found.update(spread)
            continue
        try:
            found[ast.literal_eval(key)] = ast.literal_eval(value)
        except ValueError:
            return None
    return found


def declared_params(where: str, depth: int = 0) -> dict[str, Any] | None:
    """The defaults `module:Class`'s own get_params() returns, read from its source; None where that cannot
    be told without running it (the method is inherited, computed, or the module is not a file)."""
    module, _, name = where.partition(":")
    path = module_file(module) if depth < 8 else None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8")) if path else None
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    cls = _class_node(tree, name) if tree else None
    method = next((node for node in (cls.body if cls else []) if isinstance(node, ast.FunctionDef)
                   and node.name == "get_params"), None)
    if cls is not None and method is None:            # inherited: from the one base class, if there is one
        base = _located(cls.bases[0].id, module, tree) if len(cls.bases) == 1 and isinstance(
            cls.bases[0], ast.Name) else None
        return declared_params(base, depth + 1) if base else None
    body = [statement for statement in (method.body if method else [])
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return None
    return _literal(body[0].value, module, tree, depth)
