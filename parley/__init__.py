"""Parley: a self-hosted AI chat backend with three HTTP dialects over one core."""

__version__ = "0.1.0"
