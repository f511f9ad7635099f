"""Widgets of the TUI: runs table, metric chart, log tail, diff view, GPU strip."""
