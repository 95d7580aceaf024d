"""Invertible Memory Flow Networks: the reference pipeline's Python package."""

__version__ = "0.1.0"
