"""Workflows: multi-step pipelines declared in ``workbench.yaml`` that re-run only what changed
(:mod:`.spec`, :mod:`.dag`, :mod:`.stale`, :mod:`.repro`), and hyperparameter sweeps
(:mod:`.sweep`). Every stage run and every sweep member is an ordinary run made through
``ws.runs.execute``; :class:`.service.WorkflowService` (``ws.workflows``) is the door in.
"""
