"""Packaging glue that pyproject.toml cannot say alone.

* The top-level ``themes/`` folder (the one source of the built-in themes) ships inside the wheel as
  the package ``workbench._themes``: ``[tool.setuptools.packages.find]`` cannot add a package that
  lives outside ``workbench/``, so the package list is built here; the folder mapping and package
  data stay in pyproject.toml. tests/ui/test_themes.py builds the wheel and fails if the themes are
  missing from it.
* Three optional C helpers, ``optional=True``, so an install without a C compiler or Python's headers
  still succeeds and each falls back to Python: the tracking API's buffer of metric points
  (``workbench/tracking/_pointbuf.c``, else a list: docs/tracking.md) and the stat loop of the
  status seal (``workbench/versioning/_sealcheck.c``, else the same loop in ``seal.py``), and the
  cut points of large files (``workbench/versioning/_cdc.c``, else pyfastcdc's chunker: docs/store.md).
"""

from setuptools import Extension, find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["workbench", "workbench.*"], exclude=["*.__pycache__"]),
              "workbench._themes"],
    ext_modules=[
        Extension("workbench.tracking._pointbuf", ["workbench/tracking/_pointbuf.c"], optional=True),
        Extension("workbench.versioning._sealcheck", ["workbench/versioning/_sealcheck.c"], optional=True),
        Extension("workbench.versioning._cdc", ["workbench/versioning/_cdc.c"], optional=True),
    ],
)
