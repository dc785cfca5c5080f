"""Tests of the provider-neutral realtime core."""
