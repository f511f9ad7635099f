"""Packaging glue that pyproject.toml cannot say alone.

* The top-level ``themes/`` folder (the one source of the built-in themes) ships inside the wheel as
  the package ``workbench._themes``: ``[tool.setuptools.packages.find]`` cannot add a package that
  lives outside ``workbench/``, so the package list is built here; the folder mapping and package
  data stay in pyproject.toml. tests/ui/test_themes.py builds the wheel and fails if the themes are
  missing from it.
* The optional C buffer of the tracking API's metric points (``workbench/tracking/_pointbuf.c``):
  ``optional=True``, so an install without a C compiler or Python's headers still succeeds and
  ``workbench.tracking.api`` falls back to a Python list (docs/tracking.md).
"""

from setuptools import Extension, find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["workbench", "workbench.*"], exclude=["*.__pycache__"]),
              "workbench._themes"],
    ext_modules=[Extension("workbench.tracking._pointbuf", ["workbench/tracking/_pointbuf.c"], optional=True)],
)
