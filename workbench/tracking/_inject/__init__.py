"""Files the runner puts on a child's ``sys.path`` (``PYTHONPATH``): only ``sitecustomize.py``."""
