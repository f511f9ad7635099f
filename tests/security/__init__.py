"""Hostile and broken input: one line and exit 2, never a traceback, a hang or a silent loss."""
