"""Tests for Realtime Assist."""
