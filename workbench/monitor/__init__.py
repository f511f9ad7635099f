"""Models in production: reference profiles, drift and data quality over windows, states, alerts.

UI-free like every domain package: no Textual, Rich or plotext here. The Workspace builds
:class:`workbench.monitor.service.MonitorService` as ``ws.monitor``.
"""
