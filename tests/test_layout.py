"""The shape of the code (issue 13's "Done when"): small modules and views, imports that run
one way between chipper's packages, no attributes smuggled through `__dict__`."""

import ast
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "chipper"
MODULE_MAX_LINES = 400
VIEW_MAX_LINES = 40
# Layers that must not reach up into what uses them.
BELOW_SERVICES = ("chipper.realtime", "chipper.push", "chipper.media", "chipper.jobs")
ABOVE = ("chipper.services", "chipper.web")

# Violations that work in progress is removing; each entry must still be a violation, so the
# list can only shrink.
STILL_TO_FIX: dict[str, set[str]] = {
    "long modules": set(),
    "long views": set(),
    "cycles": set(),
    "upward imports": set(),
}


def modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def room_of(name: str) -> str | None:
    """`chipper.services.calls` -> `chipper.services`; the app factory itself is no room."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "chipper" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = ["chipper", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every chipper module a file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in out if name.startswith("chipper")}


def is_room(name: str) -> bool:
    path = ROOT.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").exists()


def graph() -> dict[str, set[str]]:
    """Which room imports which: `chipper.services` -> `chipper.realtime`, ..."""
    edges: dict[str, set[str]] = {}
    for path in modules():
        source = room_of(module_name(path))
        if source is None:
            continue
        for name in imported(path):
            target = room_of(name)
            if target is not None and target != source and is_room(target):
                edges.setdefault(source, set()).add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> set[str]:
    found = set()
    for start in edges:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    ring = path[path.index(min(path)) :] + path[: path.index(min(path))]
                    found.add(" -> ".join(ring))
                elif nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return found


def check(kind: str, violations: set[str]) -> None:
    expected = STILL_TO_FIX[kind]
    assert violations - expected == set(), f"new {kind}"
    assert expected - violations == set(), f"fixed {kind}: take them off STILL_TO_FIX"


def test_no_module_is_over_400_lines_but_the_models():
    long = {
        relative(path)
        for path in modules()
        if path.name != "models.py" and len(path.read_text().splitlines()) > MODULE_MAX_LINES
    }
    check("long modules", long)


def test_no_view_function_is_over_40_lines(app):
    long = set()
    for endpoint, view in app.view_functions.items():
        if endpoint == "static":
            continue
        lines, _ = inspect.getsourcelines(inspect.unwrap(view))
        if len(lines) > VIEW_MAX_LINES:
            long.add(endpoint)
    check("long views", long)


def test_imports_between_packages_form_no_cycle():
    check("cycles", cycles(graph()))


def test_realtime_push_media_and_jobs_never_import_services_or_the_web_layer():
    upward = set()
    for path in modules():
        name = module_name(path)
        if name.startswith(BELOW_SERVICES):
            upward.update(f"{name} -> {i}" for i in imported(path) if i.startswith(ABOVE))
    check("upward imports", upward)


def test_no_attribute_is_smuggled_through_dict():
    assert [relative(p) for p in modules() if "__dict__[" in p.read_text()] == []
