"""Importers: bring runs recorded by other tools (MLflow, TensorBoard, W&B offline, DVC) into a project.

Each source module reads its tool's files (or server) into :class:`~workbench.importers.model.SourceRun`
values; :class:`~workbench.importers.writer.ImportWriter` writes them through the tracking layer's
own run records and ingester, so ``runs``, ``compare`` and the TUI show imported runs like any other.
Every imported run carries the tag ``imported_from`` (``KIND:SOURCE_ID``), which makes a re-import
add only what is new. The readers' third-party libraries are optional extras (``workbench[import]``).
"""
