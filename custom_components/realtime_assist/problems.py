"""Failures the owner can act on: a rejected key starts reauth, billing and outages raise repairs.

A failed turn is told to the user who spoke (see notices.py); what only the
home's owner can fix goes where Home Assistant shows such things: the
re-authentication flow for a key revoked after setup, and a Repairs issue for
an account out of credit or a provider that stays unreachable. Issues clear
themselves with the next turn that works, of any agent of the entry (the account
has credit, the provider answers), and also after a reload: whoever raised the
issue may be gone, so a turn that works clears both whether it raised them or not.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import CONF_PROVIDER, DOMAIN, LOGGER, PROVIDER_PROFILES
from .realtime.turn import FailureReason, TurnError

ISSUE_QUOTA = "quota_exhausted"
ISSUE_UNREACHABLE = "provider_unreachable"
ISSUES = (ISSUE_QUOTA, ISSUE_UNREACHABLE)
# Turns that failed to reach the provider in a row before it counts as an outage.
UNREACHABLE_AFTER = 3
_CONNECTION_FAILURES = frozenset({FailureReason.CONNECTION, FailureReason.SERVER})


class ProblemReporter:
    """Turns' failures of one config entry, as reauth flows and Repairs issues."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
        self._hass = hass
        self._entry = entry
        self._unreachable_in_a_row = 0

    def turn_failed(self, failure: TurnError) -> None:
        if failure.reason is FailureReason.AUTH:
            LOGGER.warning("The provider rejected the API key of %s", self._entry.title)
            self._entry.async_start_reauth(self._hass)
        elif failure.reason is FailureReason.QUOTA:
            self._raise(ISSUE_QUOTA, ir.IssueSeverity.ERROR)
        if failure.reason in _CONNECTION_FAILURES:
            self._unreachable_in_a_row += 1
            if self._unreachable_in_a_row >= UNREACHABLE_AFTER:
                self._raise(ISSUE_UNREACHABLE, ir.IssueSeverity.WARNING)

    def turn_succeeded(self) -> None:
        self._unreachable_in_a_row = 0
        clear_problems(self._hass, self._entry)

    def _raise(self, issue: str, severity: ir.IssueSeverity) -> None:
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            self._issue_id(issue),
            is_fixable=False,
            is_persistent=False,
            severity=severity,
            translation_key=issue,
            translation_placeholders={
                "entry": self._entry.title,
                "provider": PROVIDER_PROFILES[self._entry.data[CONF_PROVIDER]].title,
            },
        )

    def _issue_id(self, issue: str) -> str:
        return issue_id(issue, self._entry)


def issue_id(issue: str, entry: ConfigEntry[Any]) -> str:
    """The id of the entry's Repairs issue `issue` (one of ISSUES)."""
    return f"{issue}_{entry.entry_id}"


def clear_problems(hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
    """Delete the entry's Repairs issues (deleting one that is not there does nothing)."""
    for issue in ISSUES:
        ir.async_delete_issue(hass, DOMAIN, issue_id(issue, entry))
