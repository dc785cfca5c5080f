"""ICU MessageFormat, as Home Assistant's frontend parses the strings of strings.json.

The frontend formats every translated string with FormatJS's
`intl-messageformat`; a string its parser (`@formatjs/icu-messageformat-parser`,
`parser.ts`) refuses is shown as "Translation error: <KIND>". This is a port
of that parser's rules, small enough to read beside it (no Python package
implements FormatJS's dialect): arguments `{name}`, `{n, plural, ...}`,
`{x, select, ...}`, `{n, number, style}`, apostrophe quoting "only where
needed", and markup tags `<b>...</b>`, with the error kinds FormatJS names.
Number and date skeletons (`::...`) are accepted as written.

`parse` returns what a string refers to; `check` adds what parses yet fails
in the frontend anyway, so a test can refuse both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
import unicodedata


class ErrorKind(StrEnum):
    """FormatJS's names for syntax errors (`error.ts`), plus two of ours."""

    EXPECT_ARGUMENT_CLOSING_BRACE = "EXPECT_ARGUMENT_CLOSING_BRACE"
    EMPTY_ARGUMENT = "EMPTY_ARGUMENT"
    MALFORMED_ARGUMENT = "MALFORMED_ARGUMENT"
    EXPECT_ARGUMENT_TYPE = "EXPECT_ARGUMENT_TYPE"
    INVALID_ARGUMENT_TYPE = "INVALID_ARGUMENT_TYPE"
    EXPECT_ARGUMENT_STYLE = "EXPECT_ARGUMENT_STYLE"
    UNCLOSED_QUOTE_IN_ARGUMENT_STYLE = "UNCLOSED_QUOTE_IN_ARGUMENT_STYLE"
    EXPECT_SELECT_ARGUMENT_OPTIONS = "EXPECT_SELECT_ARGUMENT_OPTIONS"
    EXPECT_PLURAL_ARGUMENT_OFFSET_VALUE = "EXPECT_PLURAL_ARGUMENT_OFFSET_VALUE"
    EXPECT_SELECT_ARGUMENT_SELECTOR = "EXPECT_SELECT_ARGUMENT_SELECTOR"
    EXPECT_PLURAL_ARGUMENT_SELECTOR = "EXPECT_PLURAL_ARGUMENT_SELECTOR"
    EXPECT_SELECT_ARGUMENT_SELECTOR_FRAGMENT = "EXPECT_SELECT_ARGUMENT_SELECTOR_FRAGMENT"
    EXPECT_PLURAL_ARGUMENT_SELECTOR_FRAGMENT = "EXPECT_PLURAL_ARGUMENT_SELECTOR_FRAGMENT"
    DUPLICATE_SELECT_ARGUMENT_SELECTOR = "DUPLICATE_SELECT_ARGUMENT_SELECTOR"
    DUPLICATE_PLURAL_ARGUMENT_SELECTOR = "DUPLICATE_PLURAL_ARGUMENT_SELECTOR"
    MISSING_OTHER_CLAUSE = "MISSING_OTHER_CLAUSE"
    INVALID_TAG = "INVALID_TAG"
    UNMATCHED_CLOSING_TAG = "UNMATCHED_CLOSING_TAG"
    UNCLOSED_TAG = "UNCLOSED_TAG"
    # Ours: parsed, but wrong on screen (see `check`).
    MARKUP_TAG = "MARKUP_TAG"
    UNMATCHED_CLOSING_BRACE = "UNMATCHED_CLOSING_BRACE"
    QUOTED_SYNTAX = "QUOTED_SYNTAX"


class MessageError(ValueError):
    """A string the frontend cannot show: what is wrong and where."""

    def __init__(self, kind: ErrorKind, message: str, offset: int) -> None:
        """Point at the offending character."""
        super().__init__(f"{kind} at {offset}: {message[:offset]}⟦{message[offset:]}")
        self.kind = kind
        self.offset = offset


@dataclass
class Message:
    """What a parsed string refers to."""

    # Placeholders it needs a value for: `{name}`, `{count, plural, ...}`.
    arguments: set[str] = field(default_factory=set)
    # Markup tags, which the frontend formats only with a function per tag.
    tags: set[str] = field(default_factory=set)
    # Literal text that came from apostrophe quoting (`'{'`), with its offset.
    quoted_at: list[int] = field(default_factory=list)
    # Offsets of `}` outside any argument, which FormatJS prints as text.
    stray_braces_at: list[int] = field(default_factory=list)


_PLURALS = ("plural", "selectordinal")
# Unicode Pattern_Syntax (UAX #31): characters that end an identifier.
_PATTERN_SYNTAX = (
    (0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x5E), (0x60, 0x60), (0x7B, 0x7E),
    (0xA1, 0xA7), (0xA9, 0xA9), (0xAB, 0xAC), (0xAE, 0xAE), (0xB0, 0xB1),
    (0xB6, 0xB6), (0xBB, 0xBB), (0xBF, 0xBF), (0xD7, 0xD7), (0xF7, 0xF7),
    (0x2010, 0x2027), (0x2030, 0x203E), (0x2041, 0x2053), (0x2055, 0x205E),
    (0x2190, 0x245F), (0x2500, 0x2775), (0x2794, 0x2BFF), (0x2E00, 0x2E7F),
    (0x3001, 0x3003), (0x3008, 0x3020), (0x3030, 0x3030), (0xFD3E, 0xFD3F),
    (0xFE45, 0xFE46),
)  # fmt: skip
# Characters of a tag name after its first letter (`_isPotentialElementNameChar`).
_TAG_NAME_RANGES = (
    (0x2D, 0x2E), (0x30, 0x39), (0x5F, 0x5F), (0x61, 0x7A), (0x41, 0x5A),
    (0xB7, 0xB7), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x37D), (0x37F, 0x1FFF),
    (0x200C, 0x200D), (0x203F, 0x2040), (0x2070, 0x218F), (0x2C00, 0x2FEF),
    (0x3001, 0xD7FF), (0xF900, 0xFDCF), (0xFDF0, 0xFFFD), (0x10000, 0xEFFFF),
)  # fmt: skip


def _in(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= ord(char) <= high for low, high in ranges)


def _is_space(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Zs"


def _is_alpha(char: str) -> bool:
    return char.isascii() and char.isalpha()


class _Parser:
    """FormatJS's recursive descent, method for method (names as in parser.ts)."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.offset = 0
        self.result = Message()

    # -- reading ----------------------------------------------------------
    def eof(self) -> bool:
        return self.offset >= len(self.message)

    def char(self) -> str:
        return self.message[self.offset]

    def peek(self) -> str:
        return self.message[self.offset + 1 : self.offset + 2]

    def bump(self) -> None:
        self.offset += 1

    def bump_if(self, prefix: str) -> bool:
        if self.message.startswith(prefix, self.offset):
            self.offset += len(prefix)
            return True
        return False

    def bump_space(self) -> None:
        while not self.eof() and _is_space(self.char()):
            self.bump()

    def identifier(self) -> str:
        start = self.offset
        while not self.eof() and not _is_space(c := self.char()) and not _in(c, _PATTERN_SYNTAX):
            self.bump()
        return self.message[start : self.offset]

    def error(self, kind: ErrorKind, offset: int | None = None) -> MessageError:
        return MessageError(kind, self.message, self.offset if offset is None else offset)

    # -- grammar ----------------------------------------------------------
    def parse_message(self, nesting: int, parent_arg_type: str, expecting_close_tag: bool) -> None:
        while not self.eof():
            char = self.char()
            if char == "{":
                self.parse_argument(nesting, expecting_close_tag)
            elif char == "}" and nesting > 0:
                break
            elif char == "#" and parent_arg_type in _PLURALS:
                self.bump()
            elif char == "<" and self.peek() == "/":
                if expecting_close_tag:
                    break
                raise self.error(ErrorKind.UNMATCHED_CLOSING_TAG)
            elif char == "<" and _is_alpha(self.peek()):
                self.parse_tag(nesting, parent_arg_type)
            else:
                self.parse_literal(nesting, parent_arg_type)

    def parse_tag(self, nesting: int, parent_arg_type: str) -> None:
        start = self.offset
        self.bump()  # <
        name = self.tag_name()
        self.result.tags.add(name)
        self.bump_space()
        if self.bump_if("/>"):
            return
        if not self.bump_if(">"):
            raise self.error(ErrorKind.INVALID_TAG, start)
        self.parse_message(nesting + 1, parent_arg_type, True)
        end_tag = self.offset
        if not self.bump_if("</"):
            raise self.error(ErrorKind.UNCLOSED_TAG, start)
        if self.eof() or not _is_alpha(self.char()):
            raise self.error(ErrorKind.INVALID_TAG, end_tag)
        if self.tag_name() != name:
            raise self.error(ErrorKind.UNMATCHED_CLOSING_TAG, end_tag)
        self.bump_space()
        if not self.bump_if(">"):
            raise self.error(ErrorKind.INVALID_TAG, end_tag)

    def tag_name(self) -> str:
        start = self.offset
        self.bump()
        while not self.eof() and _in(self.char(), _TAG_NAME_RANGES):
            self.bump()
        return self.message[start : self.offset]

    def parse_literal(self, nesting: int, parent_arg_type: str) -> None:
        while not self.eof():
            if self.try_parse_quote(parent_arg_type):
                continue
            char = self.char()
            if char == "<":
                if _is_alpha(self.peek()) or self.peek() == "/":
                    return  # a tag starts here
                self.bump()
            elif char == "{" or (char == "#" and parent_arg_type in _PLURALS):
                return
            elif char == "}":
                if nesting > 0:
                    return
                self.result.stray_braces_at.append(self.offset)
                self.bump()
            else:
                self.bump()

    def try_parse_quote(self, parent_arg_type: str) -> bool:
        """Apostrophe quoting: only before `{`, `}`, `<`, `>` (and `#` in a plural)."""
        if self.char() != "'":
            return False
        following = self.peek()
        if following == "'":
            self.offset += 2
            return True
        if following not in ("{", "<", ">", "}") and not (
            following == "#" and parent_arg_type in _PLURALS
        ):
            return False
        self.result.quoted_at.append(self.offset)
        self.offset += 2  # the apostrophe and the character it quotes
        while not self.eof():
            if self.char() == "'":
                if self.peek() == "'":
                    self.bump()
                else:
                    self.bump()
                    break
            self.bump()
        return True

    def parse_argument(self, nesting: int, expecting_close_tag: bool) -> None:
        opening = self.offset
        self.bump()  # {
        self.bump_space()
        if self.eof():
            raise self.error(ErrorKind.EXPECT_ARGUMENT_CLOSING_BRACE, opening)
        if self.char() == "}":
            raise self.error(ErrorKind.EMPTY_ARGUMENT, opening)
        if not (name := self.identifier()):
            raise self.error(ErrorKind.MALFORMED_ARGUMENT, opening)
        self.result.arguments.add(name)
        self.bump_space()
        if self.eof():
            raise self.error(ErrorKind.EXPECT_ARGUMENT_CLOSING_BRACE, opening)
        if self.bump_if("}"):
            return
        if not self.bump_if(","):
            raise self.error(ErrorKind.MALFORMED_ARGUMENT, opening)
        self.bump_space()
        if self.eof():
            raise self.error(ErrorKind.EXPECT_ARGUMENT_CLOSING_BRACE, opening)
        self.parse_argument_options(nesting, expecting_close_tag, opening)

    def parse_argument_options(self, nesting: int, expecting_close_tag: bool, opening: int) -> None:
        arg_type = self.identifier()
        if not arg_type:
            raise self.error(ErrorKind.EXPECT_ARGUMENT_TYPE)
        if arg_type in ("number", "date", "time"):
            self.bump_space()
            if self.bump_if(","):
                self.bump_space()
                if not self.simple_arg_style().rstrip():
                    raise self.error(ErrorKind.EXPECT_ARGUMENT_STYLE)
            self.argument_close(opening)
            return
        if arg_type not in ("plural", "selectordinal", "select"):
            raise self.error(ErrorKind.INVALID_ARGUMENT_TYPE)
        self.bump_space()
        if not self.bump_if(","):
            raise self.error(ErrorKind.EXPECT_SELECT_ARGUMENT_OPTIONS)
        self.bump_space()
        selector = self.identifier()
        if arg_type != "select" and selector == "offset":
            if not self.bump_if(":"):
                raise self.error(ErrorKind.EXPECT_PLURAL_ARGUMENT_OFFSET_VALUE)
            self.bump_space()
            self.decimal_integer(ErrorKind.EXPECT_PLURAL_ARGUMENT_OFFSET_VALUE)
            self.bump_space()
            selector = self.identifier()
        self.plural_or_select_options(nesting, arg_type, expecting_close_tag, selector)
        self.argument_close(opening)

    def argument_close(self, opening: int) -> None:
        if not self.bump_if("}"):
            raise self.error(ErrorKind.EXPECT_ARGUMENT_CLOSING_BRACE, opening)

    def simple_arg_style(self) -> str:
        start, nested = self.offset, 0
        while not self.eof():
            char = self.char()
            if char == "'":
                self.bump()
                quote = self.offset
                end = self.message.find("'", self.offset)
                if end < 0:
                    raise self.error(ErrorKind.UNCLOSED_QUOTE_IN_ARGUMENT_STYLE, quote)
                self.offset = end + 1
                continue
            if char == "{":
                nested += 1
            elif char == "}":
                if nested == 0:
                    break
                nested -= 1
            self.bump()
        return self.message[start : self.offset]

    def decimal_integer(self, kind: ErrorKind) -> None:
        self.bump_if("+") or self.bump_if("-")
        start = self.offset
        while not self.eof() and self.char().isdigit():
            self.bump()
        if self.offset == start:
            raise self.error(kind)

    def plural_or_select_options(
        self, nesting: int, arg_type: str, expecting_close_tag: bool, selector: str
    ) -> None:
        select = arg_type == "select"
        seen: set[str] = set()
        while True:
            if not selector:
                start = self.offset
                if select or not self.bump_if("="):
                    break
                self.decimal_integer(ErrorKind.EXPECT_PLURAL_ARGUMENT_SELECTOR)
                selector = self.message[start : self.offset]
            if selector in seen:
                raise self.error(
                    ErrorKind.DUPLICATE_SELECT_ARGUMENT_SELECTOR
                    if select
                    else ErrorKind.DUPLICATE_PLURAL_ARGUMENT_SELECTOR
                )
            seen.add(selector)
            self.bump_space()
            opening = self.offset
            if not self.bump_if("{"):
                raise self.error(
                    ErrorKind.EXPECT_SELECT_ARGUMENT_SELECTOR_FRAGMENT
                    if select
                    else ErrorKind.EXPECT_PLURAL_ARGUMENT_SELECTOR_FRAGMENT
                )
            self.parse_message(nesting + 1, arg_type, expecting_close_tag)
            self.argument_close(opening)
            self.bump_space()
            selector = self.identifier()
        if not seen:
            raise self.error(
                ErrorKind.EXPECT_SELECT_ARGUMENT_SELECTOR
                if select
                else ErrorKind.EXPECT_PLURAL_ARGUMENT_SELECTOR
            )
        if "other" not in seen:  # IntlMessageFormat parses with requiresOtherClause
            raise self.error(ErrorKind.MISSING_OTHER_CLAUSE)


def parse(message: str) -> Message:
    """Parse like the frontend; raise MessageError where it shows "Translation error"."""
    parser = _Parser(message)
    parser.parse_message(0, "", False)
    return parser.result


def check(message: str) -> Message:
    """`parse`, and refuse what parses yet shows wrong in the frontend.

    - A markup tag: formatting it needs a function value per tag, which no
      Home Assistant form passes ("Translation Error" on screen).
    - A `}` with no `{`: printed as is, always a typo of ours.
    - Apostrophe quoting (`'{name}'`): the placeholder is printed raw.
    """
    result = parse(message)
    if result.tags:
        raise MessageError(ErrorKind.MARKUP_TAG, message, message.index("<"))
    if result.stray_braces_at:
        raise MessageError(ErrorKind.UNMATCHED_CLOSING_BRACE, message, result.stray_braces_at[0])
    if result.quoted_at:
        raise MessageError(ErrorKind.QUOTED_SYNTAX, message, result.quoted_at[0])
    return result
