"""Print the Python requirements of the Home Assistant components we load.

Home Assistant installs a component's requirements at runtime; tests and the
smoke test have no such step (and must not download at run time), so setup
installs them ahead of time. Reading them from the installed Home Assistant
keeps them in step with its version.

Usage: ha_requirements.py MANIFEST [--with-defaults] [DOMAIN ...]
  --with-defaults  also what a bare `hass` always sets up (frontend, analytics…)
"""

import json
from pathlib import Path
import sys

from homeassistant import bootstrap
import homeassistant.components

COMPONENTS_DIR = Path(homeassistant.components.__path__[0])


def always_loaded() -> set[str]:
    """The integrations `hass` sets up without being asked (the set varies by release)."""
    return {
        *bootstrap.CORE_INTEGRATIONS,
        *bootstrap.LOGGING_AND_HTTP_DEPS_INTEGRATIONS,
        *bootstrap.DEFAULT_INTEGRATIONS,
    }


def requirements(domains: set[str]) -> list[str]:
    seen: set[str] = set()
    found: list[str] = []
    pending = list(domains)
    while pending:
        domain = pending.pop()
        manifest_path = COMPONENTS_DIR / domain / "manifest.json"
        if domain in seen or not manifest_path.exists():
            continue
        seen.add(domain)
        manifest = json.loads(manifest_path.read_text())
        found.extend(r for r in manifest.get("requirements", []) if r not in found)
        pending.extend(manifest.get("dependencies", []))
        pending.extend(manifest.get("after_dependencies", []))
    return found


if __name__ == "__main__":
    project_manifest = json.loads(Path(sys.argv[1]).read_text())
    domains = set(project_manifest["dependencies"])
    for arg in sys.argv[2:]:
        if arg == "--with-defaults":
            domains |= always_loaded()
        else:
            domains.add(arg)
    print("\n".join(sorted(requirements(domains))))
