"""Benchmarks that run brorl and a named peer on the same inputs in the same process."""
