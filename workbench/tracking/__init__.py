"""Run tracking: the event wire format, the ingester, the run orchestrator, metrics, lineage, models."""
