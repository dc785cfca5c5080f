"""Provider-neutral realtime session core. No Home Assistant imports here."""
