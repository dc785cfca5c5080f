"""End-to-end smoke tests against a real `hass` process of the newest release."""
