"""The server's code layout (docs/architecture.md): `app.py` assembles the app and holds no
route; each module of `routes/` is one resource whose routes sit at module level on its
`router`, so a reader finds a route by its resource, not inside a factory's closure."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).parents[2] / "qwex-remote" / "src" / "qwex_remote" / "server"
VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "route"}


def route_decorators(tree: ast.AST) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Each function decorated `@X.<verb>(...)`, with the name of X."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                call = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(call, ast.Attribute) and call.attr in VERBS:
                    owner = call.value.id if isinstance(call.value, ast.Name) else "?"
                    found.append((node, owner))
    return found


def test_app_module_defines_no_route() -> None:
    tree = ast.parse((SERVER / "app.py").read_text())
    routes = [f"{fn.name} (line {fn.lineno})" for fn, _ in route_decorators(tree)]
    assert not routes, f"app.py defines routes; move them to server/routes/: {routes}"


def test_each_route_module_puts_its_routes_on_a_module_level_router() -> None:
    modules = sorted(p for p in (SERVER / "routes").glob("*.py") if p.name != "__init__.py")
    assert {p.stem for p in modules} >= {"health", "jobs", "logs", "snapshots", "docs"}
    for path in modules:
        tree = ast.parse(path.read_text())
        assigned = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert "router" in assigned, f"{path.name} has no module-level `router`"
        routes = route_decorators(tree)
        assert routes, f"{path.name} defines no route"
        for fn, owner in routes:
            where = f"{path.name}: {fn.name}"
            assert owner == "router", f"{where} is a route of {owner!r}, not of `router`"
            assert fn in tree.body, f"{where} is not at module level"
