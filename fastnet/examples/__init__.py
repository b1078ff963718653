"""Runnable examples: ``python -m fastnet.examples.quickstart``."""
