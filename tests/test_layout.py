"""The shape of the house: the package has no import cycle (function-level imports
included), and no test or script imports a script or edits ``sys.path``."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jaxtrack"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str, modules=()) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (absolute names);
    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is in ``modules``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {d for d in _imports(path, package, files) if d in files and d != name}
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_package_has_no_import_cycle():
    graph = _graph()
    assert "jaxtrack.trackers.siamfc" in graph and "jaxtrack.core" in graph["jaxtrack.trackers.siamfc"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_detection_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


REFERENCE = REPO / "experiments" / "reference"


def test_no_script_is_imported_and_no_sys_path_is_edited():
    scripts = {p.stem for p in (REPO / "experiments").rglob("*.py")}
    for path in sorted((REPO / "tests").glob("*.py")) + sorted((REPO / "experiments").rglob("*.py")):
        text = path.read_text()
        for edit in ("insert", "append"):
            assert f"sys.path.{edit}(" not in text, f"{path.name} edits sys.path"
        imported = {i.split(".")[0] for i in _imports(path, "")}
        if path.parent == REFERENCE:     # a harness may import its reference-side shims beside it
            imported -= {p.stem for p in REFERENCE.glob("*.py")}
        assert not imported & scripts, f"{path.name} imports the script(s) {sorted(imported & scripts)}"
