"""The apps are layers: each imports only the ones below it, so no two apps depend on each other and a
newcomer reads the code bottom up. Project wiring (settings, urls, asgi, celery) may import anything;
`lathe_common` imports no app, and outside `lathe_common/web` not Django either (vLLM's processes and the
ML core import it)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Bottom to top; an app may import the apps of the layers below its own.
LAYERS = (
    ("lathe_common",),
    ("jobs",),
    ("accounts",),
    ("models_app",),
    ("datasets_app",),
    ("training_app", "evals_app"),
    ("webapp",),
)
LAYER_OF = {app: index for index, layer in enumerate(LAYERS) for app in layer}
WIRING = {"webapp/settings.py", "webapp/urls.py", "webapp/asgi.py", "webapp/celery.py"}


def imports_of(path: Path, *, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def source_files(app: str):
    for path in (REPO / app).rglob("*.py"):
        if "migrations" not in path.parts:
            yield path


def test_every_app_imports_only_the_layers_below_it():
    wrong = []
    for app, layer in LAYER_OF.items():
        for path in source_files(app):
            name = str(path.relative_to(REPO))
            if name in WIRING:
                continue
            for other in imports_of(path) & LAYER_OF.keys():
                if other != app and LAYER_OF[other] >= layer:
                    wrong.append(f"{name} imports {other}")
    assert not wrong, "\n".join(wrong)


def test_the_shared_helpers_outside_web_load_without_django():
    for path in source_files("lathe_common"):
        if "web" in path.relative_to(REPO / "lathe_common").parts:
            continue
        assert "django" not in imports_of(path, module_level_only=True), path
