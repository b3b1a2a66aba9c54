"""Benchmarks that compare posekit's components with real data and with naive peers.

Each benchmark module exposes ``run_*`` returning a JSON-ready dict ``{"benchmark": name,
"settings": {...}, "methods": {method: {...}}}``, a ``format_table`` for the terminal and
a ``write_figure`` for a PNG. ``posekit bench NAME`` is the command-line adapter.
"""
