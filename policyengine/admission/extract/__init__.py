"""Extractors: one module per resource family, manifest -> routes, pure functions."""
