"""Fuzzer format plug-ins: each module exposes FORMAT (a tests.fuzz.plugins.FuzzFormat or None)."""
