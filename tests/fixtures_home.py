"""Fixtures for a small home: real Home Assistant entities for the model to control."""
