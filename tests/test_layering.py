"""Which part of the code may import which: every module under index_tts/ (and webui.py) belongs to
one layer below, and may import only what its layer allows. Parsed with `ast`, nothing imported.

    front ends   webui.py, index_tts/ui/, index_tts/api*.py   -> index_tts.service only
                 (the launcher, webui.py, also builds the Ray-served engine from index_tts.scale)
    service      index_tts/service                             -> engines, text, storage, model_store, leaves
    engines      index_tts/engines/                            -> modules, text, model_store, leaves
                                                                  (+ quickvoice, for engines/quick.py only)
    modules      one nn.Module per file                        -> torch, safetensors, each other
    text, quickvoice                                           -> leaves
    storage, model_store   the data folder and the weights     -> leaves (used by the service, not above it)
    scale        index_tts/scale: Ray actors and Serve replicas  -> service, engines (their base types), leaves
                 (an optional extra; the launcher and the project CLI reach it, lazily, for --ray)
    bench, tools, the CLI  (python -m index_tts ...)           -> engines, modules, text, model_store, leaves, cli
                 (bench/scale_out.py, the scale-out benchmark: -> service, scale, leaves)
    cli          index_tts/project_cli.py (a front end)        -> index_tts.service only (+ scale for --ray)
    leaves       audio, encoding, emotion, timestretch, subtitles, fileio -> each other
                 (fileio, the atomic file writes, is standard library only: every layer may use it)

Plus: no import cycle between layers or packages; third-party web stacks stay in the front ends.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute names of everything `path` imports (relative imports resolved).

    `from a.b import c` yields a.b and a.b.c: c may be a submodule, and a rule on a.b.c must see it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
                names.append(target)
                names += [f"{target}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
                if node.module == "index_tts" or node.module.startswith("index_tts."):
                    names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# ---------------------------------------------------------------------------------------------
# The rules


@dataclass(frozen=True)
class Layer:
    name: str
    members: tuple[str, ...]  # module or package names; a module belongs to the layer of its longest match
    may_import: tuple[str, ...]  # layer names (besides its own layer)
    exact: bool = False  # members name single modules, not packages with everything under them


LEAVES = ("index_tts.audio", "index_tts.encoding", "index_tts.emotion", "index_tts.timestretch",
          "index_tts.subtitles", "index_tts.fileio")
LAYERS = (
    Layer("launcher", ("webui",), ("service", "ui", "http", "scale")),
    Layer("ui", ("index_tts.ui",), ("service",)),
    Layer("http", ("index_tts.api",), ("service",)),
    Layer("service", ("index_tts.service",), ("engines", "text", "storage", "model_store", "leaves")),
    Layer("engines", ("index_tts.engines",), ("modules", "text", "quickvoice", "model_store", "leaves")),
    Layer("scale", ("index_tts.scale",), ("service", "engines", "leaves")),
    Layer("modules", ("index_tts.modules",), ()),
    Layer("text", ("index_tts.text",), ("leaves",)),
    Layer("quickvoice", ("index_tts.quickvoice",), ("leaves",)),
    Layer("storage", ("index_tts.storage",), ("leaves",)),
    Layer("model_store", ("index_tts.model_store",), ("leaves",)),
    Layer("tools", ("index_tts.bench", "index_tts.tools", "index_tts.__main__"),
          ("engines", "modules", "text", "model_store", "leaves", "cli")),
    # the scale-out benchmark measures runners and the served studio, through the service
    Layer("scale bench", ("index_tts.bench.scale_out",), ("service", "scale", "leaves")),
    # `python -m index_tts project ...`: a front end of the service, like the UI (its own Synthesizer);
    # `--ray` hands its segments to index_tts.scale's RayRunner.
    Layer("cli", ("index_tts.project_cli",), ("service", "scale")),
    Layer("leaves", LEAVES, ()),
    Layer("root", ("index_tts",), (), exact=True),  # index_tts/__init__.py: the version, imports nothing
)
# Every layer may import the package root (`from index_tts import audio` names it), and the atomic
# file writes (standard library only; model_store, bench and kernel caches write files too).
ALWAYS = ("root",)
EVERYWHERE = ("index_tts.fileio",)
# A package that belongs to one engine: only that engine imports it ("no engine imports another
# engine's package"). The neural engines share modules/ and text/.
ENGINE_PACKAGES = {"index_tts.quickvoice": ("index_tts.engines.quick",)}
FRONT_END_LAYERS = ("launcher", "ui", "http", "cli")
WEB_STACK = ("fastapi", "starlette", "uvicorn")


def layer_of(mod: str) -> Layer | None:
    best, best_len = None, -1
    for layer in LAYERS:
        for member in layer.members:
            if (mod == member if layer.exact else under(mod, member)) and len(member) > best_len:
                best, best_len = layer, len(member)
    return best


def is_module(name: str) -> bool:
    """A module or package of ours, not a name imported from one (`from a import b` yields a.b)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_ours(name: str) -> bool:
    return top(name) in ("index_tts", "webui")


def problem_with(mod: str, name: str) -> str | None:
    """Why module `mod` may not import `name`, or None when it may."""
    own = layer_of(mod)
    if own is None:
        return None  # test_every_module_is_in_a_layer reports the module
    if top(name) == "gradio" and own.name != "ui":
        return "only index_tts/ui imports gradio"
    if top(name) in WEB_STACK and own.name not in ("http", "launcher"):
        return "only index_tts/api*.py and webui.py import fastapi/starlette/uvicorn"
    if own.name == "modules" and not is_ours(name):
        # safetensors is a weight format the loaders read; w2v_bert.py wraps transformers'
        # Wav2Vec2BertModel by design, nothing else may.
        allowed = top(name) in STDLIB or top(name) in ("torch", "safetensors")
        allowed = allowed or (mod == "index_tts.modules.w2v_bert" and top(name) == "transformers")
        if not allowed:
            return "modules/ may import only torch, safetensors, the standard library and its siblings"
    if not is_ours(name):
        return None
    if top(name) == "webui" and mod != "webui":
        return "nothing imports the launcher"
    target = layer_of(name)
    if target is None:
        return None  # not a module of ours: test_every_module_is_in_a_layer reports it
    for package, owners in ENGINE_PACKAGES.items():
        if under(name, package) and not under(mod, package) and not any(under(mod, o) for o in owners):
            return f"{package} belongs to {', '.join(owners)}; no other module imports it"
    if own.name in FRONT_END_LAYERS and target.name == "service" and name != "index_tts.service" and is_module(name):
        return "front ends import only index_tts.service and their own package, not the service's parts"
    if target is own or target.name in own.may_import or target.name in ALWAYS or any(under(name, m) for m in EVERYWHERE):
        return None
    if own.name in FRONT_END_LAYERS:
        return f"front ends import only index_tts.service and their own package, not the {target.name} layer"
    return f"the {own.name} layer may not import the {target.name} layer"


def violations_in(path: Path) -> list[str]:
    mod = module_name(path)
    found, seen = [], set()
    for name in imports_of(path):
        problem = problem_with(mod, name)
        # `from a.b import c` is checked as a.b and a.b.c; report the shorter name once.
        if problem and (name.rpartition(".")[0], problem) not in seen:
            seen.add((name, problem))
            found.append(f"{path.relative_to(ROOT)} imports {name}: {problem}")
    return found


def sources(root: Path) -> list[Path]:
    return sorted((root / "index_tts").rglob("*.py")) + [root / "webui.py"]


SOURCES = sources(ROOT)


def violations(paths: list[Path] | None = None) -> list[str]:
    return [v for path in (SOURCES if paths is None else paths) for v in violations_in(path)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path):
    assert violations_in(path) == []


def test_every_module_is_in_a_layer():
    assert [str(p.relative_to(ROOT)) for p in SOURCES if layer_of(module_name(p)) is None] == []
    # and every name a rule mentions is a layer
    names = {layer.name for layer in LAYERS}
    assert all(set(layer.may_import) <= names for layer in LAYERS)


def package_of(mod: str) -> str:
    """index_tts.engines.quick -> index_tts.engines; index_tts.audio -> index_tts.audio."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "index_tts" and len(parts) > 1 else parts[0]


def cycles(paths: list[Path]) -> list[list[str]]:
    """Import cycles between top-level packages/modules (index_tts.engines, index_tts.audio, ...)."""
    known = {package_of(module_name(p)) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        src = package_of(module_name(path))
        for name in imports_of(path):
            dst = package_of(name)
            if is_ours(name) and dst in known and dst != src and dst != "index_tts":
                graph.setdefault(src, set()).add(dst)
    found = []

    def walk(node: str, trail: list[str]):
        for nxt in sorted(graph.get(node, ())):
            if nxt == trail[0]:
                found.append(trail + [nxt])
            elif nxt not in trail and nxt > trail[0]:  # report each cycle once, from its smallest node
                walk(nxt, trail + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_no_import_cycle_between_packages():
    assert [" -> ".join(c) for c in cycles(SOURCES)] == []


# ---------------------------------------------------------------------------------------------
# The checker itself


def plant(root: Path, files: dict[str, str]) -> list[Path]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return sources(root)


def test_the_checker_catches_backward_and_sideways_imports(tmp_path, monkeypatch):
    """The rules must actually fire: plant bad files in a copy of the layout."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    paths = plant(tmp_path, {
        "index_tts/modules/bad.py": "import numpy\nimport transformers\nfrom index_tts.service import x\n",
        "index_tts/engines/bad.py": "from ..service import Synthesizer\nfrom index_tts.quickvoice import lexicon\n",
        "index_tts/engines/quick.py": "from index_tts.quickvoice import espeak\n",  # its own package: fine
        "index_tts/service/__init__.py": "import gradio as gr\nfrom fastapi import FastAPI\nfrom index_tts import audio\n",
        "index_tts/service/library.py": "",
        "index_tts/ui/app.py": "from index_tts.service import Synthesizer\nfrom index_tts.storage import Library\n"
                              "from index_tts.service.library import x\nfrom index_tts.ui.strings import t\n",
        "index_tts/api.py": "from index_tts.service import Synthesizer\nfrom fastapi import APIRouter\nfrom . import ui\n",
        "index_tts/model_store/doctor.py": "from index_tts.engines.model_files import required_files\n",
        "index_tts/audio.py": "import numpy\nfrom index_tts.emotion import EMOTIONS\n",  # leaves may use leaves
        "index_tts/modules/cache.py": "from index_tts.fileio import atomic_write_bytes\n",  # every layer may
        "index_tts/emotion.py": "",
        "webui.py": "import fastapi\nfrom index_tts.ui.app import mount_ui\nfrom index_tts.engines import select_engine\n",
    })
    joined = "\n".join(violations(paths))
    expected = [
        "modules/bad.py imports numpy",
        "modules/bad.py imports transformers",  # allowed in w2v_bert.py only
        "modules/bad.py imports index_tts.service",
        "engines/bad.py imports index_tts.service",
        "engines/bad.py imports index_tts.quickvoice: index_tts.quickvoice belongs to index_tts.engines.quick",
        "service/__init__.py imports gradio",
        "service/__init__.py imports fastapi",
        "ui/app.py imports index_tts.storage: front ends import only index_tts.service",
        "ui/app.py imports index_tts.service.library: front ends import only index_tts.service",
        "api.py imports index_tts.ui: front ends import only index_tts.service",
        "model_store/doctor.py imports index_tts.engines.model_files: the model_store layer may not import the engines layer",
        "webui.py imports index_tts.engines: front ends import only index_tts.service",
    ]
    for line in expected:
        assert line in joined
    assert len(joined.splitlines()) == len(expected), joined
    assert [" -> ".join(c) for c in cycles(paths)] == []


def test_the_checker_finds_cycles_and_unplaced_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    paths = plant(tmp_path, {
        "index_tts/model_store/doctor.py": "from index_tts.engines.model_files import required_files\n",
        "index_tts/engines/model_files.py": "from index_tts.model_store.layout import ModelFiles\n",
        "index_tts/model_store/layout.py": "",
        "index_tts/newthing.py": "",
        "webui.py": "",
    })
    assert [" -> ".join(c) for c in cycles(paths)] == ["index_tts.engines -> index_tts.model_store -> index_tts.engines"]
    assert [module_name(p) for p in paths if layer_of(module_name(p)) is None] == ["index_tts.newthing"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_source_parses(path):
    ast.parse(path.read_text(encoding="utf-8"))
