"""The manifest: its links, and every Home Assistant integration we use, and only those.

Home Assistant's own check (hassfest) reads every `homeassistant.components.X`
import of an integration and wants X in `dependencies` or `after_dependencies`,
unless X is an entity platform, one of a few integrations that are always
there, or a platform of X that we provide (our `diagnostics.py` may import
from `diagnostics`). This does the same, and also refuses dependencies we
declare but never use (each one is loaded before us for nothing).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from homeassistant.const import Platform

import custom_components.realtime_assist
from custom_components.realtime_assist.const import DOCUMENTATION_URL, REPOSITORY_URL

INTEGRATION = Path(custom_components.realtime_assist.__file__).parent
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
# Always set up by Home Assistant: hassfest lets any integration use them.
ALWAYS_THERE = {"conversation", "homeassistant", "websocket_api", "frontend"}
# Used without an import: the TTS manager serves our audio under /api/tts_proxy.
USED_WITHOUT_IMPORT: set[str] = set()


def _imported_integrations(path: Path) -> set[str]:
    """`homeassistant.components.X` modules a file imports, outside TYPE_CHECKING."""
    found: set[str] = set()

    class Collector(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            module = node.module or ""
            if module.startswith("homeassistant.components."):
                found.add(module.split(".")[2])
            elif module == "homeassistant.components":
                found.update(alias.name for alias in node.names)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name.startswith("homeassistant.components."):
                    found.add(alias.name.split(".")[2])

    Collector().visit(ast.parse(path.read_text()))
    return found


def _uses() -> dict[str, set[Path]]:
    """Every integration our files import, with the files that import it."""
    uses: dict[str, set[Path]] = {}
    for path in INTEGRATION.rglob("*.py"):
        for domain in _imported_integrations(path):
            uses.setdefault(domain, set()).add(path.relative_to(INTEGRATION))
    return uses


def test_every_integration_we_import_is_in_the_manifest() -> None:
    manifest = MANIFEST
    declared = {*manifest.get("dependencies", []), *manifest.get("after_dependencies", [])}
    allowed = declared | ALWAYS_THERE | {platform.value for platform in Platform}
    undeclared = {
        domain: sorted(str(path) for path in paths)
        for domain, paths in _uses().items()
        # A platform we provide for another integration may import it.
        if domain not in allowed and {path.stem for path in paths} != {domain}
    }
    assert undeclared == {}


def test_every_dependency_in_the_manifest_is_used() -> None:
    manifest = MANIFEST
    used = set(_uses()) | USED_WITHOUT_IMPORT
    unused = {
        domain
        for domain in [*manifest.get("dependencies", []), *manifest.get("after_dependencies", [])]
        if domain not in used
    }
    assert unused == set()


def test_no_dependency_is_declared_twice() -> None:
    manifest = MANIFEST
    assert not set(manifest.get("dependencies", [])) & set(manifest.get("after_dependencies", []))


def test_documentation_and_issues_link_to_the_repository() -> None:
    """The documentation link opens the README, as the setup form does; issues go to its tracker."""
    assert MANIFEST["documentation"] == DOCUMENTATION_URL == f"{REPOSITORY_URL}#readme"
    assert MANIFEST["issue_tracker"] == f"{REPOSITORY_URL}/issues"
