"""Moved to test_spans.py; ``get_text`` stays importable here for test_pipeline.py."""

from .rig.reads import get_text as get_text
