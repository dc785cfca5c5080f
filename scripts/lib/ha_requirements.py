"""Print the Python requirements of the Home Assistant components we load.

Home Assistant installs a component's requirements at runtime; tests and the
smoke test have no such step, so setup installs them ahead of time. Reading
them from the installed Home Assistant keeps them in step with its version.
"""

import json
import sys
from pathlib import Path

import homeassistant.components

COMPONENTS_DIR = Path(homeassistant.components.__path__[0])


def requirements(domains: list[str]) -> list[str]:
    seen: set[str] = set()
    found: list[str] = []
    pending = list(domains)
    while pending:
        domain = pending.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((COMPONENTS_DIR / domain / "manifest.json").read_text())
        found.extend(r for r in manifest.get("requirements", []) if r not in found)
        pending.extend(manifest.get("dependencies", []))
    return found


if __name__ == "__main__":
    project_manifest = json.loads(Path(sys.argv[1]).read_text())
    extra = sys.argv[2:]
    print("\n".join(requirements([*project_manifest["dependencies"], *extra])))
