"""A new user's first minutes in the real frontend, in headless Chromium.

Logs into the smoke test's hass as its owner, adds the integration as a user
would (a wrong key first, then the right one against the fake server, asking
for the preferred assistant), adds a second agent through its form (switching
turn detection, which changes the fields shown), and looks at the assistants
that were made. Every form must read as the user sees it: no "Translation
error", no raw translation key, no field without a label. Screenshots for the
README go to docs/images/ (the same pixels on every run).
"""

import asyncio
from collections.abc import AsyncIterator
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops
import pytest
import pytest_asyncio

from tests.fakes.openai_realtime import FakeOpenAIRealtimeServer
from tests.smoke.browser import BrowserError, Page, chromium, open_page
from tests.smoke.hass_process import PROJECT_DIR, HassClient, HassProcess

DOMAIN = "realtime_assist"
SCREENSHOTS = PROJECT_DIR / "docs" / "images"
WIDTH, HEIGHT = 1280, 900
# Tall enough for the whole agent form in one picture.
TALL = 2600

# A click on a section's header that opened nothing is tried again, as a user would.
CLICKS_PER_SECTION = 3
CLICK_EFFECT_S = 5.0
DIALOG = "__ra.find('dialog-data-entry-flow')"
FORM = f"__ra.find('step-flow-form', {DIALOG})"
# The dialog's visible box (for screenshots).
DIALOG_BOX = f"__ra.find('dialog', {DIALOG})"


def button(text: str, root: str = "document") -> str:
    """JavaScript finding the button that reads `text`."""
    return f"__ra.findAll('ha-button', {root}).find((b) => __ra.text(b) === {json.dumps(text)})"


def field(name: str) -> str:
    """JavaScript finding the form field `name` (the element rendering it)."""
    return f"__ra.findAll('*', {FORM}).find((el) => el.schema?.name === {json.dumps(name)})"


def field_input(name: str, tag: str = "input") -> str:
    """JavaScript finding the input element of the form field `name`."""
    return f"__ra.find('{tag}', {field(name)})"


def rendered(name: str) -> str:
    """JavaScript: is the form field `name` on screen?"""
    return f"!!{field(name)}"


# Everything wrong with the dialog's current form, as a user would read it.
FORM_PROBLEMS = """
(() => {
  const dialog = __ra.find('dialog-data-entry-flow');
  const problems = [];
  const text = __ra.text(dialog);
  for (const match of text.matchAll(/translation error[^.]*/gi)) problems.push(match[0]);
  if (text.includes('component.')) problems.push('a raw translation key in: ' + text);
  for (const el of __ra.findAll('*', dialog)) {
    const field = el.schema;
    if (!field || Array.isArray(field) || !field.name) continue;
    const label = (el.label ?? '').trim();
    if (!label || label === field.name) problems.push(`field ${field.name} has no label`);
  }
  const step = __ra.find('step-flow-form', dialog)?.step;
  const localize = document.querySelector('home-assistant').hass.localize;
  const flat = (fields) => fields.flatMap((f) => (f.type === 'expandable' ? flat(f.schema) : [f]));
  for (const field of flat(step?.data_schema ?? [])) {
    const select = field.selector?.select;
    if (!select?.translation_key) continue;
    for (const option of select.options) {
      const key = `component.DOMAIN.selector.${select.translation_key}.options.${option}`;
      const label = localize(key);
      if (!label || /translation error/i.test(label)) problems.push(`option ${key}: "${label}"`);
    }
  }
  for (const alert of __ra.findAll('ha-alert', dialog)) {
    const shown = __ra.text(alert);
    if (/^[a-z_]+$/.test(shown)) problems.push('an error shown as its key: ' + shown);
  }
  return problems;
})()
""".replace("DOMAIN", DOMAIN)


async def assert_form_reads_well(page: Page) -> None:
    """The form on screen has labels and texts, no translation errors or raw keys."""
    assert await page.evaluate(FORM_PROBLEMS) == []


async def expand_sections(page: Page) -> None:
    """Open every collapsed section of the form, as a user clicking their headers.

    A click that opened nothing (seen in CI under load) is repeated, as a
    user would; a section that never opens still fails the test.
    """
    collapsed = f"__ra.findAll('ha-expansion-panel', {FORM}).find((panel) => !panel.expanded)"
    while await page.evaluate(f"!!{collapsed}"):
        await page.evaluate(f"void (window.__raPanel = {collapsed})")
        for _ in range(CLICKS_PER_SECTION - 1):
            await page.click("__ra.find('#summary', window.__raPanel)")
            with contextlib.suppress(BrowserError):
                await page.wait_for(
                    "window.__raPanel.expanded || !window.__raPanel.isConnected", CLICK_EFFECT_S
                )
                break
        else:
            await page.click("__ra.find('#summary', window.__raPanel)")
            await page.wait_for("window.__raPanel.expanded || !window.__raPanel.isConnected")


async def screenshot(page: Page, path: Path, element: str | None = None) -> None:
    """Save the page (or one element of it) once it is still: no caret, no hover, no animation."""
    await page.evaluate(
        "(() => { let el = document.activeElement;"
        " while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement; el?.blur(); })()"
    )
    await page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0})
    await page.wait_for("!__ra.animating()")
    await asyncio.to_thread(_save_picture, path, await page.screenshot(element))


def _save_picture(path: Path, png: bytes) -> None:
    """Write `png`, unless the picture there looks the same.

    A button's shade can differ by a level or two between runs; no pixel
    differing by more than a few levels means nothing a user could see
    changed, so the committed screenshots change only when the UI does.
    """
    if path.exists():
        with Image.open(path) as old, Image.open(io.BytesIO(png)) as new:
            if old.size == new.size:
                difference = ImageChops.difference(old.convert("L"), new.convert("L"))
                if max(difference.getextrema()) <= 8:
                    return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


async def log_in(page: Page, hass: HassProcess) -> None:
    """Log in through the login page as the owner."""
    await page.goto(hass.url + "/")
    await page.type_into("__ra.find('input[name=username]')", hass.login.username)
    await page.type_into("__ra.find('input[name=password]')", hass.login.password)
    await page.click(button("Log in"))
    await page.wait_for("document.querySelector('home-assistant')?.hass?.user")


async def submit(page: Page) -> None:
    """Press the dialog's Submit button and wait until the flow answered with its next step."""
    await page.evaluate(f"window.__raStep = {FORM}.step")
    await page.click(button("Submit", DIALOG))
    await page.wait_for(f"__ra.find('[step]', {DIALOG})?.step !== window.__raStep")


@pytest_asyncio.fixture(loop_scope="session")
async def page(hass_process: HassProcess, tmp_path: Path) -> AsyncIterator[Page]:
    """A logged-in tab of a fresh headless Chromium."""
    async with chromium(tmp_path / "profile", tmp_path / "chromium.log") as devtools:
        tab = await open_page(devtools, WIDTH, HEIGHT)
        await log_in(tab, hass_process)
        yield tab


async def _our_pipelines(hass_client: HassClient, entry_id: str) -> tuple[list[Any], str]:
    """The pipelines of the entry's agents, and the preferred pipeline's id."""
    registry = await hass_client.ws({"type": "config/entity_registry/list"})
    ours = {e["entity_id"] for e in registry if e["config_entry_id"] == entry_id}
    listed = await hass_client.ws({"type": "assist_pipeline/pipeline/list"})
    pipelines = [p for p in listed["pipelines"] if p["conversation_engine"] in ours]
    return pipelines, listed["preferred_pipeline"]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_new_users_first_minutes(
    page: Page, hass_client: HassClient, fake_openai: FakeOpenAIRealtimeServer, tmp_path: Path
) -> None:
    """Setup (wrong key, right key), a second agent, and the assistants they come with."""
    preferred_before = (await hass_client.ws({"type": "assist_pipeline/pipeline/list"}))[
        "preferred_pipeline"
    ]
    entries_before = {e["entry_id"] for e in await hass_client.ws({"type": "config_entries/get"})}

    # Settings > Devices & services > Add integration > Realtime Assist.
    await page.set_viewport(WIDTH, TALL)
    await page.goto(f"{hass_client.url}/config/integrations/dashboard/add?domain={DOMAIN}")
    await page.click(button("OK"))  # "Do you want to set up Realtime Assist?"
    await page.wait_for(f"{FORM} && __ra.text({FORM}).includes('API key')")
    await expand_sections(page)  # Advanced
    await assert_form_reads_well(page)
    await screenshot(page, SCREENSHOTS / "setup.png", DIALOG_BOX)

    # A wrong key: the form says which endpoint refused it, and why.
    await page.type_into(field_input("api_key"), "sk-wrong-key")
    await page.type_into(field_input("url"), fake_openai.url)
    await page.click(field_input("make_preferred", "ha-switch"))
    await submit(page)
    alert = f"__ra.find('ha-alert', {FORM})"
    error = await page.wait_for(f"{alert} && __ra.text({alert})")
    assert f"{fake_openai.url} rejected the API key: Incorrect API key provided" in error
    assert "sk-wrong-key" not in await page.evaluate(f"__ra.text({DIALOG})")
    await assert_form_reads_well(page)
    # Not for the README: the fake server's port changes from run to run.
    await screenshot(page, tmp_path / "setup-error.png", DIALOG_BOX)

    # The right key: the entry is made and its first agent is the preferred assistant.
    await page.type_into(field_input("api_key"), fake_openai.api_key)
    await submit(page)
    await page.wait_for(f"__ra.find('step-flow-create-entry', {DIALOG})")
    assert "translation error" not in (await page.evaluate(f"__ra.text({DIALOG})")).lower()
    await page.click(button("Skip and finish", DIALOG))
    await page.wait_for(f"!{DIALOG} || !__ra.find('step-flow-create-entry', {DIALOG})")
    [entry] = [
        e
        for e in await hass_client.ws({"type": "config_entries/get", "domain": DOMAIN})
        if e["entry_id"] not in entries_before
    ]
    try:
        assert entry["state"] == "loaded"
        assert entry["title"] == f"OpenAI Realtime ({fake_openai.url.split('/')[2]})"
        [pipeline], preferred = await _our_pipelines(hass_client, entry["entry_id"])
        assert preferred == pipeline["id"]
        assert (pipeline["name"], pipeline["tts_voice"]) == ("Realtime Assist", "marin")

        # Add realtime agent: its form, in sections, with only the fields that apply.
        await page.goto(f"{hass_client.url}/config/integrations/integration/{DOMAIN}")
        await page.click(button("Add realtime agent"))
        await page.wait_for(f"{FORM} && __ra.text({FORM}).includes('Voice and behaviour')")
        await expand_sections(page)
        await assert_form_reads_well(page)
        assert await page.evaluate(f"{field_input('name')}.value") == "Realtime Assist 2"
        # Server voice detection: its pause length shows, semantic detection's eagerness not.
        assert await page.evaluate(rendered("silence_duration_ms"))
        assert not await page.evaluate(rendered("vad_eagerness"))
        await screenshot(page, SCREENSHOTS / "agent-form.png", DIALOG_BOX)
        # Semantic detection instead: eagerness comes, the pause length goes.
        await page.click(field_input("turn_detection", "ha-select"))
        await page.click(
            "__ra.findAll('ha-dropdown-item').find((item) => "
            "__ra.text(item).startsWith('When you sound finished'))"
        )
        await page.wait_for(f"{rendered('vad_eagerness')} && !{rendered('silence_duration_ms')}")
        await assert_form_reads_well(page)
        await submit(page)
        await page.wait_for(f"!{FORM}")
        diagnostics = await hass_client.rest(
            "GET", f"/api/diagnostics/config_entry/{entry['entry_id']}"
        )
        agents = {a["title"]: a["data"] for a in diagnostics["data"]["subentries"]}
        assert agents["Realtime Assist 2"]["turn_detection"] == "semantic_vad"
        assert agents["Realtime Assist 2"]["vad_eagerness"] == "auto"
        await page.set_viewport(WIDTH, HEIGHT)

        # Settings > Voice assistants: ours is the preferred one (starred). Its
        # settings: the agent's voice, the engines told apart by name.
        await page.goto(f"{hass_client.url}/config/voice-assistants/assistants")
        row = "__ra.findAll('ha-list-item-button').find((i) => __ra.text(i).startsWith('Realtime'))"
        await page.wait_for(f"{row} && document.querySelector('home-assistant').hass.states")
        await screenshot(page, SCREENSHOTS / "assistants.png")
        await page.set_viewport(WIDTH, TALL)
        await page.click(row)
        # Its settings: the engines by name (the pickers fill in once they have
        # the states) and the agent's voice.
        pipeline = "__ra.find('dialog-voice-assistant-pipeline-detail')"
        await page.wait_for(
            f"__ra.text(__ra.find('ha-stt-picker', {pipeline})).includes('Speech-to-text')"
        )
        shown = await page.wait_for(
            f"__ra.find('ha-tts-voice-picker', {pipeline})?.value === 'marin'"
            f" && __ra.text({pipeline})"
        )
        assert "Realtime Assist Text-to-speech" in shown
        assert "Marin" in shown
        await screenshot(page, SCREENSHOTS / "assistant.png", f"__ra.find('dialog', {pipeline})")
    finally:
        await _remove(hass_client, entry["entry_id"], preferred_before)


async def _remove(hass_client: HassClient, entry_id: str, preferred: str) -> None:
    """Leave hass as the test found it: its preferred pipeline, no entry or pipeline of ours."""
    pipelines, _ = await _our_pipelines(hass_client, entry_id)
    await hass_client.ws(
        {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": preferred}
    )
    for pipeline in pipelines:
        await hass_client.ws(
            {"type": "assist_pipeline/pipeline/delete", "pipeline_id": pipeline["id"]}
        )
    await hass_client.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
