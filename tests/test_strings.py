"""strings.json as the frontend reads it: every text parses, none breaks on screen.

The frontend formats each text with FormatJS's ICU MessageFormat parser; one it
refuses shows as "Translation error: UNCLOSED_TAG" and the like, which no
Python test of a flow would notice. tests/icu_message.py ports that parser.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
from typing import Any

import pytest

import custom_components.realtime_assist
from tests.icu_message import ErrorKind, MessageError, check, parse

PACKAGE = Path(custom_components.realtime_assist.__file__).parent
STRINGS = json.loads((PACKAGE / "strings.json").read_text())


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    else:
        for key, child in node.items():
            yield from _texts(child, f"{path}.{key}" if path else key)


TEXTS = dict(_texts(STRINGS))


def test_english_translation_is_strings_json() -> None:
    """Custom integrations ship translations/en.json; it must not drift from strings.json."""
    assert json.loads((PACKAGE / "translations" / "en.json").read_text()) == STRINGS


@pytest.mark.parametrize("key", TEXTS)
def test_text_formats_in_the_frontend(key: str) -> None:
    """No syntax error, no markup tag, no stray brace, no quoted placeholder."""
    check(TEXTS[key])


@pytest.mark.parametrize("key", TEXTS)
def test_text_holds_no_url(key: str) -> None:
    """As in Home Assistant core, links come from description placeholders."""
    assert not re.search(r"https?://", TEXTS[key])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # The endpoint help text that showed "Translation error: UNCLOSED_TAG".
        ("For Azure OpenAI: https://<resource>.openai.azure.com/openai/v1.", "UNCLOSED_TAG"),
        ("Change the key of {name", "EXPECT_ARGUMENT_CLOSING_BRACE"),
        ("Change the key of {name.", "MALFORMED_ARGUMENT"),
        ("Change the key of {}.", "EMPTY_ARGUMENT"),
        ("Connect to {api-url}.", "MALFORMED_ARGUMENT"),
        ("{count, plural, one {# agent}}", "MISSING_OTHER_CLAUSE"),
        ("{count, plurals, other {# agents}}", "INVALID_ARGUMENT_TYPE"),
        ("</b> closes nothing", "UNMATCHED_CLOSING_TAG"),
        ("<b>bold</i>", "UNMATCHED_CLOSING_TAG"),
        ("<b>bold</b>", "MARKUP_TAG"),
        ("A stray } brace", "UNMATCHED_CLOSING_BRACE"),
        ("Quoted '{name}' is printed raw", "QUOTED_SYNTAX"),
    ],
)
def test_checker_refuses_what_the_frontend_cannot_show(text: str, kind: str) -> None:
    with pytest.raises(MessageError) as caught:
        check(text)
    assert caught.value.kind == ErrorKind(kind)


def test_checker_accepts_what_the_frontend_formats() -> None:
    """Placeholders, plurals, apostrophes in words, lone angle brackets and `''`."""
    message = parse(
        "The provider's key of {name} failed {count, plural, =0 {never} one {once} other {# times}}"
        " ({reason}); 3 < 4 and it''s {url}."
    )
    assert message.arguments == {"name", "count", "reason", "url"}
    assert not message.tags
