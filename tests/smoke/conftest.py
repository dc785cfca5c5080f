"""Fixtures for the end-to-end smoke tests against a real `hass` process.

scripts/test runs these with -p no:homeassistant and --confcutdir=tests/smoke:
the Home Assistant pytest plugin patches Home Assistant in-process and pins an
older release, and these tests want neither. One hass process serves the whole
session (starting it is the expensive part); tests add what they need to it
through `hass_client`, and leave it as they found it for the tests after them.
"""

from collections.abc import AsyncIterator, Generator, Iterator
import os
from pathlib import Path

import pytest
import pytest_asyncio

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.smoke.hass_process import HassClient, HassProcess, error_records

HASS_KEY = pytest.StashKey[HassProcess]()
# How much of the log has been checked for errors, so each is reported once.
CHECKED_KEY = pytest.StashKey[int]()
LOG_NEEDLE = "realtime_assist"


def newest_hass_bin() -> Path:
    """The `hass` of the venv that holds the newest Home Assistant release."""
    venv = os.environ.get("REALTIME_ASSIST_NEWEST_VENV")
    if not venv:
        pytest.fail("REALTIME_ASSIST_NEWEST_VENV is not set: run the smoke test via scripts/test")
    return Path(venv) / "bin" / "hass"


def check_log(config: pytest.Config) -> None:
    """Fail on ERROR records that mention the integration and were not reported yet."""
    if (process := config.stash.get(HASS_KEY, None)) is None:
        return
    text = process.log_text()
    new = text[config.stash.get(CHECKED_KEY, 0) :]
    config.stash[CHECKED_KEY] = len(text)
    if errors := error_records(new, LOG_NEEDLE):
        pytest.fail("hass logged errors about the integration:\n\n" + "\n\n".join(errors))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hass_process(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[HassProcess]:
    """A started, onboarded hass with the integration installed; stopped at the end."""
    process = HassProcess(newest_hass_bin(), tmp_path_factory.mktemp("hass-config"))
    process.write_config()
    request.config.stash[HASS_KEY] = process
    try:
        try:
            await process.start()
        except Exception as err:
            pytest.fail(f"hass did not start: {err!r}\n\n{process.log_tail()}")
        yield process
    finally:
        await process.stop()
    check_log(request.config)


@pytest.fixture(scope="session")
def hass_client(hass_process: HassProcess) -> HassClient:
    """Authenticated REST and websocket access to the running hass, as its owner."""
    assert hass_process.client is not None
    return hass_process.client


@pytest.fixture(autouse=True)
def _no_integration_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Charge each test with the integration errors hass logged while it ran."""
    yield
    check_log(request.config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of hass's log to every failure: it is gone once the run ends."""
    report: pytest.TestReport = yield
    if report.failed and (process := item.config.stash.get(HASS_KEY, None)) is not None:
        report.sections.append(("hass log (tail)", process.log_tail()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long hass took to start, to keep an eye on the time budget."""
    if (process := terminalreporter.config.stash.get(HASS_KEY, None)) and process.version:
        terminalreporter.write_line(
            f"hass {process.version}: HTTP up after {process.http_up_after:.1f} s, "
            f"running after {process.running_after:.1f} s"
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_openai() -> AsyncIterator[FakeOpenAIRealtimeServer]:
    """The fake OpenAI Realtime server, for hass to connect to over loopback.

    It runs on the session's event loop: tests that use it must too
    (`@pytest.mark.asyncio(loop_scope="session")`).
    """
    async with FakeOpenAIRealtimeServer() as server:
        yield server
