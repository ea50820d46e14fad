"""The package's shape, as docs/layout.md describes it: folders by role, imports that run one
way (tools and the demo above the daemon, the daemon above the stages, the stages above config
and the shared records), no import cycle, and modules small enough to read at one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "edgeswin"

# Lowest first: a module may import its own layer and the ones below, never one above.
LAYERS = [
    {"errors", "files", "records", "scenes", "labelled", "schemas", "topics"},
    {"config"},
    {"capture", "prepare", "engine", "classify", "publish", "govern", "health", "canary",
     "rollout", "process", "fleet"},
    {"daemon", "serving", "lineup", "prestart"},
    {"cli", "__main__", "tools", "demo", "toolchain", "watch", "review", "verbs"},
]
# "About 400" and "about 60": a hard line exactly there would move code for the count alone.
MAX_LINES = 420
MAX_FUNCTION_LINES = 70  # longer only with a comment in it that starts "# Long:" and says why
MAX_PARAMETERS = 10  # beyond that, an options object (toolchain.export.ExportOptions, ...)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module inside the package, at module level?) for each import in `path`."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("edgeswin"):
                target = node.module.removeprefix("edgeswin").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.append((sub if sub in known else target, id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("edgeswin."):
                    found.append((alias.name.removeprefix("edgeswin."), id(node) in top))
    return [(t, level) for t, level in found if t and t != name]


def layer(module: str) -> int:
    group = module.split(".")[0]
    return next(i for i, groups in enumerate(LAYERS) if group in groups)


def test_every_module_belongs_to_a_layer():
    for name in modules():
        if name:
            assert any(name.split(".")[0] in groups for groups in LAYERS), name


def test_imports_run_one_way():
    known = modules()
    upward = []
    for name, path in known.items():
        if not name:
            continue
        for target, _ in imports(name, path, known):
            if target and layer(target) > layer(name):
                upward.append(f"{name} imports {target}")
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    """Module-level imports, and between the role folders counting imports inside
    functions too: a cycle there means a hand-over object is missing."""
    known = modules()
    graph: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    for name, path in known.items():
        for target, module_level in imports(name, path, known):
            if module_level:
                graph.setdefault(name, set()).add(target)
            a, b = name.split(".")[0], target.split(".")[0]
            if a != b:
                groups.setdefault(a, set()).add(b)

    def cycle(g: dict[str, set[str]]) -> list[str] | None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(n: str) -> list[str] | None:
            state[n] = 1
            stack.append(n)
            for m in sorted(g.get(n, ())):
                if state.get(m) == 1:
                    return stack[stack.index(m):] + [m]
                if m not in state and (found := visit(m)):
                    return found
            stack.pop()
            state[n] = 2
            return None

        for n in sorted(g):
            if n not in state and (found := visit(n)):
                return found
        return None

    assert cycle(graph) is None, " -> ".join(cycle(graph))
    assert cycle(groups) is None, " -> ".join(cycle(groups))


def test_modules_and_functions_stay_small():
    """Modules read at one sitting, functions on a screen, and no call that needs more than
    MAX_PARAMETERS arguments in a row (`self` not counted): more travel as one options object."""
    long_modules, long_functions, long_lists = [], [], []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.splitlines()
        if len(lines) > MAX_LINES:
            long_modules.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = lines[node.lineno - 1:node.end_lineno]
                if len(body) > MAX_FUNCTION_LINES and \
                        not any(line.strip().startswith("# Long:") for line in body):
                    long_functions.append(f"{name}.{node.name}: {len(body)} lines")
                args = node.args
                named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs
                         if a.arg not in ("self", "cls")]
                if len(named) > MAX_PARAMETERS:
                    long_lists.append(f"{name}.{node.name}: {len(named)} parameters")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
    assert not long_lists, long_lists


def test_every_verb_is_one_module_of_one_pattern():
    """`cli.VERBS` lists every verb; each module has HELP, add_arguments and run, and no
    other module declares a verb (`add_parser` only in cli.py)."""
    import importlib

    from edgeswin.cli import VERBS, build_parser

    for verb, where in VERBS.items():
        module = importlib.import_module(f"edgeswin.{where}")
        assert isinstance(module.HELP, str) and module.HELP, verb
        assert callable(module.add_arguments) and callable(module.run), verb
    declared = [name for name, path in modules().items()
                if name != "cli" and "add_parser(" in path.read_text()
                and name not in {w for w in VERBS.values()}]
    assert not declared, declared
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(VERBS)


MAX_TEST_LINES = 650  # a test module is read whole too; about 600, as the package's 400 is


def test_tests_are_small_and_conftest_holds_only_fixtures():
    """A test module fits a sitting; conftest.py holds fixtures only and no module imports it
    (what tests and benchmarks share is in tests/harness.py)."""
    tests = PACKAGE.parent / "tests"
    # The doubles in fakes/ stand for NVIDIA's whole API surface and are sized by it.
    long = [f"{p.name}: {n} lines" for p in sorted(tests.rglob("*.py")) if "fakes" not in p.parts
            and (n := len(p.read_text().splitlines())) > MAX_TEST_LINES]
    assert not long, long
    conftest = ast.parse((tests / "conftest.py").read_text())
    plain = [node.name for node in conftest.body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not any(
                 "fixture" in ast.unparse(d) for d in getattr(node, "decorator_list", []))]
    assert not plain, f"conftest.py defines more than fixtures: {plain}"
    importers = [p.name for p in list(tests.rglob("*.py")) + list((tests.parent /
                 "benchmarks").glob("*.py"))
                 if re.search(r"^from (\.|tests\.)conftest import", p.read_text(), re.M)]
    assert not importers, importers


# Test folders besides the package's own: house/ the project's shape and docs, system/ the
# whole product against the world.
TEST_GROUPS_BESIDES = {"house", "system"}


def test_tests_are_grouped_like_the_package_with_system_tests_apart():
    """Every test module sits in a folder named after the package folder it tests (a reader
    looking for capture's tests opens tests/capture/), in house/ or in system/; tests/ itself
    holds only what the tests share (harness, cameras, relays, fixtures)."""
    tests = PACKAGE.parent / "tests"
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    loose = sorted(p.name for p in tests.glob("test_*.py"))
    assert not loose, f"test modules outside a group folder: {loose}"
    strays = sorted(str(p.relative_to(tests)) for p in tests.glob("*/test_*.py")
                    if p.parent.name not in folders | TEST_GROUPS_BESIDES)
    assert not strays, f"test folders that name no package folder: {strays}"
    for group in {p.parent for p in tests.glob("*/test_*.py")}:
        assert (group / "__init__.py").is_file(), f"{group.name}/ has no __init__.py"


def test_benchmarks_are_a_package_that_sets_no_path():
    """`python -m benchmarks.NAME` from the root imports edgeswin, tests.harness and its
    siblings as they are: no script puts the repository on sys.path by hand (the TensorRT
    double's folder, put first on purpose, is the one exception)."""
    bench = PACKAGE.parent / "benchmarks"
    assert (bench / "__init__.py").is_file()
    edits = [f"{p.name}: {line.strip()}" for p in sorted(bench.glob("*.py"))
             for line in p.read_text().splitlines()
             if "sys.path.insert" in line and "fakes" not in line]
    assert not edits, edits
