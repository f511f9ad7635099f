"""Screens of the TUI: one module per screen, plus dialogs and help."""
