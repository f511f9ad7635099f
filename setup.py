"""Packaging glue that pyproject.toml cannot say alone: the top-level ``themes/`` folder (the one
source of the built-in themes) ships inside the wheel as the package ``workbench._themes``.

``[tool.setuptools.packages.find]`` cannot add a package that lives outside ``workbench/``, so the
package list is built here; the folder mapping and package data stay in pyproject.toml.
tests/ui/test_themes.py builds the wheel and fails if the themes are missing from it.
"""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["workbench", "workbench.*"],
                                                       exclude=["*.__pycache__"]), "workbench._themes"])
