"""Benchmarks that compare posekit's components with real data and with naive peers.

The top library layer: a benchmark may import the engines, the metrics (:mod:`posekit.eval`)
and the data generators; nothing in the library imports a benchmark (``posekit bench NAME``,
the command-line adapter, does).

Each benchmark module exposes ``run_*`` returning a JSON-ready dict ``{"benchmark": name,
"settings": {...}, "methods": {method: {...}}}``, a ``format_table`` for the terminal and
a ``write_figure`` for a PNG.
"""
