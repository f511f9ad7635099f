"""The core: the Workspace facade that the CLI, the TUI and the tracking API all call."""
