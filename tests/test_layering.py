"""The package's layering, read from the source with ``ast`` (imports inside functions count too).

Layers, lowest first: ``graph`` (the parameter-graph data model, converters, architecture records) → ``group``
→ ``nn`` → ``data`` / ``features`` / ``baselines`` → ``train`` / ``cli`` / ``bench`` / ``viz`` / ``experiments``.
``_errors``, ``_io`` and ``_version`` are leaves every layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "monomial_gmn"
SRC = ROOT / "src" / PACKAGE
EXPERIMENTS = ROOT / "experiments"

LEAVES = {"_errors", "_io", "_version"}
#: what a subpackage may import besides itself and the leaves (subpackages not named here are unrestricted)
ALLOWED = {"graph": set(), "group": {"graph"}, "nn": {"graph", "group"}}
LOW = {"features", "baselines", "data", "nn", "group", "graph"}
TOP = {"train", "cli", "bench", "viz", "experiments"}


# ------------------------------------------------------------------------------------------------ the checker
def module_name(path: Path, base: Path, prefix: str) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of a file under ``base``."""
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts), is_package


def imports_of(module: str, is_package: bool, source: str, known: set[str]) -> list[tuple[str, str | None, int]]:
    """(target module, imported name or None, line) for every import statement of ``source``, wherever it is
    (module level, function body, ``if TYPE_CHECKING``). Relative imports are resolved against ``module``;
    ``from pkg import sub`` names the submodule ``pkg.sub`` when ``known`` holds it."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    out.append((sub, None, node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return out


def unit(target: str) -> str | None:
    """The layer a module belongs to: ``graph`` for ``monomial_gmn.graph._spec``, ``models`` for
    ``monomial_gmn.models``, ``<root>`` for the package itself, ``experiments``; None outside the project."""
    parts = target.split(".")
    if parts[0] == "experiments" or parts[0] == "_common":
        return "experiments"
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else "<root>"


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def violations(sources: dict[str, tuple[str, bool]], experiments: dict[str, str] | None = None) -> list[str]:
    """Every breach of the layering in ``sources`` (``{module: (source, is_package)}``) and of the
    no-private-imports rule in ``experiments`` (``{file name: source}``)."""
    known = set(sources)
    problems: list[str] = []
    edges: dict[str, set[str]] = {}
    for module, (source, is_package) in sorted(sources.items()):
        here = unit(module)
        for target, name, line in imports_of(module, is_package, source, known):
            there = unit(target)
            if there is None or there == here:
                continue
            where = f"{module}:{line} imports {target}" + (f".{name}" if name else "")
            if here in ALLOWED and there not in ALLOWED[here] | LEAVES:
                allowed = sorted(ALLOWED[here] | LEAVES)
                problems.append(f"{where}: {here} may import only {allowed}")
            elif here in LOW and there in TOP:
                problems.append(f"{where}: {here} is below {there}")
            elif here in LOW and there == "<root>":
                problems.append(f"{where}: {here} imports the package root (which imports every layer)")
            if there not in LEAVES and there != "<root>":
                edges.setdefault(here, set()).add(there)
    problems.extend(f"import cycle between subpackages: {' -> '.join(c)}" for c in _cycles(edges))
    for name, source in sorted((experiments or {}).items()):
        for target, imported, line in imports_of(f"experiments.{name}", False, source, known):
            if unit(target) in (None, "experiments"):
                continue
            parts = target.split(".")[1:] + ([imported] if imported and imported != "*" else [])
            if any(_private(p) for p in parts):
                problems.append(f"experiments/{name}.py:{line} imports {target}"
                                + (f".{imported}" if imported else "") + ": a private module or name")
    return problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of units (Tarjan), each as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(_closed_path(edges, set(group)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _closed_path(edges: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest closed path through the smallest unit of a strongly connected ``group``."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ()) & group):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected group has a cycle")


def package_sources() -> dict[str, tuple[str, bool]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        name, is_package = module_name(path, SRC, PACKAGE)
        out[name] = (path.read_text(encoding="utf-8"), is_package)
    return out


def experiment_sources() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(EXPERIMENTS.glob("*.py"))}


# ------------------------------------------------------------------------------------------------ the tests
def _layer_problems(kind: str) -> list[str]:
    everything = violations(package_sources(), experiment_sources())
    if kind == "experiments":
        return [p for p in everything if p.startswith("experiments/")]
    if kind == "cycles":
        return [p for p in everything if p.startswith("import cycle")]
    return [p for p in everything if p.split(":")[0].split(".")[:2] == [PACKAGE, kind]]


@pytest.mark.parametrize("layer", ["graph", "group", "nn", "data", "features", "baselines"])
def test_layer_imports_only_what_is_below_it(layer):
    assert _layer_problems(layer) == []


def test_no_cycle_between_subpackages():
    assert _layer_problems("cycles") == []


def test_experiments_import_no_private_module_or_name():
    assert _layer_problems("experiments") == []


def test_the_checker_sees_every_package_module():
    sources = package_sources()
    assert f"{PACKAGE}.graph" in sources and f"{PACKAGE}.graph._parameter_graph" in sources
    assert sources[f"{PACKAGE}.graph"][1] and not sources[f"{PACKAGE}.graph._spec"][1]


def test_checker_resolves_relative_and_lazy_imports():
    src = ("from .._errors import ZooFormatError\n"
           "from . import _sub\n"
           "def f():\n"
           "    from ..nn import MonomialGMN\n"
           "    import monomial_gmn.train._config\n")
    got = imports_of("monomial_gmn.graph._x", False, src, {"monomial_gmn.graph._sub"})
    assert got == [("monomial_gmn._errors", "ZooFormatError", 1), ("monomial_gmn.graph._sub", None, 2),
                   ("monomial_gmn.nn", "MonomialGMN", 4), ("monomial_gmn.train._config", None, 5)]
    pkg = imports_of("monomial_gmn.data", True, "from ..graph import Architecture\n", set())
    assert pkg == [("monomial_gmn.graph", "Architecture", 1)]


def test_checker_flags_synthetic_bad_imports():
    """Sensitivity: each rule fires on a source string that breaks it, and stays quiet on a clean one."""
    clean = {"monomial_gmn.graph._a": ("from .._errors import ZooFormatError\nfrom ._b import x\n", False),
             "monomial_gmn.group._g": ("from ..graph import Symmetry\n", False),
             "monomial_gmn.nn._n": ("from ..group import MonomialGroup\nfrom ..graph import Role\n", False)}
    assert violations(clean, {"ok": "from monomial_gmn.graph import ParameterGraph\nfrom _common import _x\n"}) == []

    def flagged(module: str, source: str) -> list[str]:
        return violations({**clean, module: (source, False)})

    lazy_up = "def f():\n    from ..nn import MonomialGMN\n    return MonomialGMN\n"
    assert any("graph may import only" in p for p in flagged("monomial_gmn.graph._bad", lazy_up))
    assert any("group may import only" in p for p in flagged("monomial_gmn.group._bad", "from ..data import Zoo\n"))
    assert any("nn may import only" in p for p in flagged("monomial_gmn.nn._bad", "import monomial_gmn.features\n"))
    assert any("is below train" in p for p in flagged("monomial_gmn.data._bad", "from ..train import Augment\n"))
    assert any("package root" in p for p in flagged("monomial_gmn.data._bad", "from .. import __version__\n"))
    cycle = {"monomial_gmn.data._a": ("from ..features import f\n", False),
             "monomial_gmn.features._b": ("def g():\n    from ..baselines import h\n", False),
             "monomial_gmn.baselines._c": ("from monomial_gmn.data import Zoo\n", False)}
    assert violations(cycle) == ["import cycle between subpackages: baselines -> data -> features -> baselines"]
    assert violations({k: v for k, v in cycle.items() if "baselines" not in k}) == []
    bad_exp = {"x": "from monomial_gmn.data._functional import stacked_forward\n",
               "y": "def f():\n    from monomial_gmn.data import _functional\n",
               "z": "from monomial_gmn.train import _mix\n"}
    assert len(violations(clean, bad_exp)) == 3


# ------------------------------------------------------------------------------------------------ private modules
#: package-top modules any module may import by their private names
SHARED_LEAVES = {"_errors", "_io", "_version", "_defaults", "_search_space"}


def private_imports(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every import in ``sources`` (``{module: (source, is_package)}``) of a private module or name of another
    unit (``monomial_gmn.<sub>._x``, ``from monomial_gmn.<sub> import _x``, lazy imports included): a module
    reaches other subpackages through their ``__init__`` names only. A subpackage's own private modules and the
    package-top leaves in :data:`SHARED_LEAVES` are allowed; a top-level module (``monomial_gmn.models``) is a
    unit of its own."""
    known = set(sources)
    problems = []
    for module, (source, is_package) in sorted(sources.items()):
        here = unit(module)
        for target, name, line in imports_of(module, is_package, source, known):
            if unit(target) in (None, "experiments", here):
                continue
            parts = target.split(".")[1:] + ([name] if name and name != "*" else [])
            if parts and parts[0] not in SHARED_LEAVES and any(_private(p) for p in parts):
                problems.append(f"{module}:{line} imports {target}" + (f".{name}" if name else "")
                                + f": a private module or name of {parts[0]}")
    return problems


def test_no_module_imports_another_subpackages_private_module():
    assert private_imports(package_sources()) == []


def test_private_import_check_flags_synthetic_sources():
    """Sensitivity: private modules of other subpackages are flagged however they are reached (relative,
    absolute, lazy, ``from pkg import _mod``); the public ``__init__`` names, a subpackage's own private modules
    and the package-top leaves are not."""
    base = {"monomial_gmn.graph": ("from ._spec import GraphSpec\n", True),
            "monomial_gmn.graph._spec": ("", False),
            "monomial_gmn.nn": ("from ._model import M\n", True),
            "monomial_gmn.nn._model": ("", False),
            "monomial_gmn._errors": ("", False),
            "monomial_gmn._defaults": ("", False),
            "monomial_gmn.models": ("", False)}
    clean = ("from ..graph import GraphSpec\nfrom .._errors import ZooFormatError\nfrom .._defaults import X\n"
             "from ._model import M\nimport monomial_gmn.graph\n")
    assert private_imports({**base, "monomial_gmn.nn._other": (clean, False)}) == []
    assert private_imports({**base, "monomial_gmn.models": ("from .nn import M\nfrom ._errors import E\n",
                                                            False)}) == []

    def flagged(module: str, source: str) -> list[str]:
        return private_imports({**base, module: (source, False)})

    assert flagged("monomial_gmn.nn._bad", "from ..graph._spec import GraphSpec\n")
    assert flagged("monomial_gmn.nn._bad", "def f():\n    from ..graph._spec import GraphSpec\n")
    assert flagged("monomial_gmn.nn._bad", "from ..graph import _spec\n")
    assert flagged("monomial_gmn.nn._bad", "import monomial_gmn.graph._spec\n")
    assert flagged("monomial_gmn.train._bad", "from monomial_gmn.nn._model import M\n")
    assert flagged("monomial_gmn.models", "def f():\n    from .nn._model import M\n")
    assert flagged("monomial_gmn.verify", "from .graph._spec import GraphSpec\n")
    assert flagged("monomial_gmn.nn._bad", "from .. import _hidden\n")
    assert len(flagged("monomial_gmn.nn._bad", "from ..graph._spec import GraphSpec\nfrom ..nn._model import M\n")) == 1
