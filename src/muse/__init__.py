"""Muse: a content-addressed version-control system (see docs/format.md)."""

__version__ = "0.1.0"
