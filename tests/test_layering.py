"""Imports flow one way: UI/API -> service -> engines -> modules. Parsed with `ast`, nothing imported."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "index_tts"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute names of everything `path` imports (relative imports resolved)."""
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
                if not node.module:  # `from . import x`
                    names += [f"{prefix}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
                # `from index_tts import service` imports the submodule
                if node.module == "index_tts" or node.module.startswith("index_tts."):
                    names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def top(name: str) -> str:
    return name.split(".")[0]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


SOURCES = sorted(PACKAGE.rglob("*.py")) + [ROOT / "webui.py"]
API_MODULES = ("index_tts.api",)  # the HTTP layer (a package)
# What a front end may import from the project: the service, and its own package. The launcher
# also mounts the UI and the HTTP API.
FRONT_END_IMPORTS = {"index_tts.api": ("index_tts.service", "index_tts.api"),
                     "index_tts.ui": ("index_tts.service", "index_tts.ui"),
                     "webui": ("index_tts.service", "index_tts.ui", "index_tts.api")}


def front_end(mod: str) -> str | None:
    return next((f for f in FRONT_END_IMPORTS if under(mod, f)), None)


def violations() -> list[str]:
    found = []
    reported = set()
    for path in SOURCES:
        if not path.exists():
            continue
        mod = module_name(path)
        for name in imports_of(path):
            problem = None
            if under(mod, "index_tts.modules"):
                # safetensors is a weight format the loaders read; w2v_bert.py wraps transformers'
                # Wav2Vec2BertModel by design (the issue asks for it), nothing else may.
                allowed = top(name) in STDLIB or top(name) in ("torch", "safetensors") or under(name, "index_tts.modules")
                allowed = allowed or (mod == "index_tts.modules.w2v_bert" and top(name) == "transformers")
                if not allowed:
                    problem = "modules/ may import only torch, safetensors, the standard library and its siblings"
            if problem is None and not under(mod, "index_tts.ui") and top(name) == "gradio":
                problem = "only index_tts/ui imports gradio"
            if problem is None and top(name) in ("fastapi", "starlette", "uvicorn") and not front_end(mod):
                problem = "only index_tts/api*.py and webui.py import fastapi/uvicorn"
            if problem is None and (under(mod, "index_tts.engines") or under(mod, "index_tts.modules")
                                    or under(mod, "index_tts.text") or under(mod, "index_tts.quickvoice")):
                if any(under(name, f"index_tts.{upper}") for upper in ("service", "ui", "api", "storage")):
                    problem = "engines and what they use must not import the service, storage, UI or API"
            if problem is None and (under(mod, "index_tts.service") or mod == "index_tts.storage"):
                if any(under(name, f"index_tts.{upper}") for upper in ("ui", "api")):
                    problem = "the service must not import the UI or the API"
            if problem is None and under(mod, "index_tts.ui") and any(under(name, m) for m in API_MODULES):
                problem = "the UI and the API are siblings; neither imports the other"
            if problem is None and front_end(mod) and (top(name) == "index_tts" or name == "index_tts") \
                    and not any(under(name, allowed) for allowed in FRONT_END_IMPORTS[front_end(mod)]):
                problem = "a front end imports only index_tts.service and its own package"
            if problem is None and top(name) == "webui" and mod != "webui":
                problem = "nothing imports the launcher"
            # `from a.b import c` is checked as a.b and a.b.c; report it once.
            if problem and (path, name.rpartition(".")[0], problem) not in reported:
                reported.add((path, name, problem))
                found.append(f"{path.relative_to(ROOT)} imports {name}: {problem}")
    return found


def test_import_graph_points_one_way():
    assert violations() == []


def test_the_checker_catches_a_backward_import(tmp_path, monkeypatch):
    """The rules above must actually fire: plant bad files in a copy of the layout."""
    fake_root = tmp_path
    (fake_root / "index_tts" / "modules").mkdir(parents=True)
    (fake_root / "index_tts" / "engines").mkdir(parents=True)
    (fake_root / "index_tts" / "modules" / "bad.py").write_text("import numpy\nimport transformers\nfrom index_tts.service import x\n")
    (fake_root / "index_tts" / "engines" / "bad.py").write_text("from ..service import Synthesizer\n")
    (fake_root / "index_tts" / "service.py").write_text("import gradio as gr\nfrom fastapi import FastAPI\n")
    (fake_root / "webui.py").write_text("import fastapi\nfrom index_tts.ui.app import mount_ui\n")
    (fake_root / "index_tts" / "api").mkdir()
    (fake_root / "index_tts" / "api" / "bad.py").write_text("from index_tts.storage import VoiceStore\nfrom index_tts.service import Synthesizer\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    monkeypatch.setattr(sys.modules[__name__], "SOURCES", sorted((fake_root / "index_tts").rglob("*.py")) + [fake_root / "webui.py"])
    found = violations()
    joined = "\n".join(found)
    assert "modules/bad.py imports numpy" in joined
    assert "modules/bad.py imports transformers" in joined  # allowed in w2v_bert.py only
    assert "modules/bad.py imports index_tts.service" in joined
    assert "engines/bad.py imports index_tts.service" in joined
    assert "service.py imports gradio" in joined
    assert "service.py imports fastapi" in joined
    assert not any(line.startswith("webui.py") for line in found)  # the launcher may import fastapi and mount the UI
    assert "api/bad.py imports index_tts.storage: a front end imports only index_tts.service" in joined
    assert not any("api/bad.py imports index_tts.service" in line for line in found)
    assert len(found) == 7


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_source_parses(path):
    ast.parse(path.read_text(encoding="utf-8"))
