"""The manifest's links: where the integration page sends a user for help."""

from __future__ import annotations

import json
from pathlib import Path

import custom_components.realtime_assist
from custom_components.realtime_assist.const import DOCUMENTATION_URL, REPOSITORY_URL

MANIFEST = json.loads(
    (Path(custom_components.realtime_assist.__file__).parent / "manifest.json").read_text()
)


def test_documentation_and_issues_link_to_the_repository() -> None:
    """The documentation link opens the README, as the setup form does; issues go to its tracker."""
    assert MANIFEST["documentation"] == DOCUMENTATION_URL == f"{REPOSITORY_URL}#readme"
    assert MANIFEST["issue_tracker"] == f"{REPOSITORY_URL}/issues"
