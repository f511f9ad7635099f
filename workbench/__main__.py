"""``python -m workbench``."""

from workbench.cli import main

if __name__ == "__main__":  # not when a spawned worker process (the monitor's fold) imports this module
    raise SystemExit(main())
