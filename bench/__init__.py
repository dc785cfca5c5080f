"""Benchmarks of Realtime Assist in real Assist pipeline runs (`scripts/bench`; not tests)."""
