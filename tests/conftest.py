"""Shared fixtures.

The `hass` fixture puts the plugin's own testing config dir first on
sys.path, so our package must be imported before it runs for Home Assistant
to find `custom_components.realtime_assist`.
"""

import pytest

import custom_components.realtime_assist  # noqa: F401

pytest_plugins = [
    "tests.fixtures_entry",
    "tests.fixtures_home",
    "tests.other_integration",
    "tests.satellite_fixtures",
]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Let Home Assistant load our custom integration in every test that runs it.

    Tests of the Home Assistant-free core do not start Home Assistant at all.
    """
    if "hass" in request.fixturenames:
        request.getfixturevalue("enable_custom_integrations")
