"""The models module, split into a package of small modules that load on first use.

datamodel-code-generator writes every model into one module, so importing any model would
build all of them (about 0.5 ms a class: 60 ms at 34 webhooks, ten times that at 340). Here
each class gets a module of its own (classes that refer to each other in a cycle share
one), importing exactly the modules of the classes it refers to, and ``models/__init__.py``
finds a name's module only when the name is first asked for. Importing or using one event
model then builds just what that model reaches.

This works on the syntax tree of the generated module, not its text: names, imports and
statements are moved whole, never rewritten.
"""

from __future__ import annotations

import ast
import hashlib
import keyword
import re
from collections.abc import Iterable, Mapping

from ..errors import GenerationError

MODELS_PACKAGE = "models"


def _names(node: ast.AST) -> set[str]:
    """The names ``node`` reads. A name it only binds is not a use: an enum member ``Team``
    does not need the class ``Team``."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


# Far below any file system's limit on a file name (255 bytes on most), with room for the
# suffix that keeps two long names apart.
MAX_MODULE_NAME = 64


_LETTERS = str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")


def _module_name(class_name: str, taken: set[str]) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()
    if len(snake) > MAX_MODULE_NAME:
        # Cut, and told apart by a digest of the whole name: unique and stable. In letters
        # only: isort and ruff order digit runs with leading zeros differently.
        digest = hashlib.sha256(snake.encode()).hexdigest()[:10].translate(_LETTERS)
        snake = f"{snake[: MAX_MODULE_NAME - 11]}_{digest}"
    if keyword.iskeyword(snake):
        snake += "_"  # ``from .def import Def`` is not Python
    name, number = snake, 2
    while name in taken or name == "__init__":
        name, number = f"{snake}_{number}", number + 1
    taken.add(name)
    return name


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan), each sorted, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return sorted(groups)


def split_models(tree: ast.Module, header: str) -> tuple[dict[str, str], dict[str, str]]:
    """(module name -> source, class name -> module name) for the models package, from the
    parsed models module (read, not changed)."""
    imports: dict[str, ast.stmt] = {}  # bound name -> the import that binds it
    classes: dict[str, ast.ClassDef] = {}
    after: dict[str, list[ast.stmt]] = {}  # class -> statements about it (model_rebuild)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                imports[alias.asname or alias.name.split(".")[0]] = node
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and isinstance(node.value.func.value, ast.Name)
            and node.value.func.value.id in classes
        ):
            after.setdefault(node.value.func.value.id, []).append(node)
        else:
            raise GenerationError(f"unexpected statement in the models: {ast.unparse(node)[:80]}")
    uses = {name: _names(node) for name, node in classes.items()}
    graph = {name: {u for u in used if u in classes and u != name} for name, used in uses.items()}
    taken: set[str] = set()
    where: dict[str, str] = {}
    modules: dict[str, str] = {}
    for group in _cycles(graph):
        module = _module_name(group[0], taken)
        for name in group:
            where[name] = module
    for group in _cycles(graph):
        module = where[group[0]]
        # The classes of a cycle first, then what was said about them (``model_rebuild()``),
        # which needs every one of them defined.
        body: list[ast.stmt] = [classes[name] for name in group]
        for name in group:
            body.extend(after.get(name, []))
        used = set().union(*(uses[name] for name in group)) | set().union(
            *(_names(s) for name in group for s in after.get(name, []))
        )
        lines = [header, ""]
        if len(group) > 1 or group[0] in uses[group[0]]:
            # Classes that refer to each other (or to themselves) need their annotations
            # read later; every other module's are plain names imported above, evaluated
            # as the class is made, which spares pydantic evaluating them from strings.
            lines += ["from __future__ import annotations", ""]
        lines += _import_lines(used, imports)
        for other in sorted({where[u] for u in used if u in where} - {module}):
            names = sorted(u for u in used if where.get(u) == other)
            lines.append(f"from .{other} import {', '.join(names)}")
        lines += ["", ""]
        lines.append("\n\n\n".join(ast.unparse(stmt) for stmt in body))
        modules[module] = "\n".join(lines) + "\n"
    return modules, where


def _import_lines(used: Iterable[str], imports: Mapping[str, ast.stmt]) -> list[str]:
    """The original import statements, cut down to the names this module uses."""
    wanted = set(used)
    lines: list[str] = []
    seen: set[int] = set()
    for node in imports.values():
        if id(node) in seen:
            continue
        seen.add(id(node))
        assert isinstance(node, ast.Import | ast.ImportFrom)
        keep = [a for a in node.names if (a.asname or a.name.split(".")[0]) in wanted]
        if not keep:
            continue
        if isinstance(node, ast.ImportFrom):
            lines.append(ast.unparse(ast.ImportFrom(module=node.module, names=keep, level=node.level)))
        else:
            lines.append(ast.unparse(ast.Import(names=keep)))
    return lines
