"""The Deployments screen against the real local target: MLServer processes serving demo models.

Deploys from the Models screen with ``d``, watches the rollout on the Deployments screen, scales
with ``+``, sends predictions and sees the traffic charts, rolls back with ``r`` after confirming.
The local target needs its serving venv (MLServer + scikit-learn), built on first use from PyPI
(about 40 s, cached under ~/.cache/workbench/serve); without it the test is skipped, saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.ui.conftest import make_app, settle, wait_for
from workbench.core.workspace import Workspace
from workbench.errors import WorkbenchError
from workbench.ui.screens.deployments import DeploymentsScreen
from workbench.ui.screens.dialogs import ConfirmDialog
from workbench.ui.screens.models import ModelsScreen
from workbench.ui.widgets.metric_chart import MetricChart

pytestmark = pytest.mark.slow

REQUEST = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": [0.0] * 32 + [8.0] * 32}]}


@pytest.fixture(scope="session")
def serve_venv() -> Path:
    """The real serving venv for this scikit-learn (as tests/deploy builds it, with the real HOME)."""
    import sklearn

    from workbench.deploy import serving

    try:
        return serving.ensure_serve_venv(serving.runtime_for("sklearn"), sklearn.__version__)
    except (WorkbenchError, OSError) as exc:
        pytest.skip(f"the local serving venv could not be built here: {exc}")


async def test_deploy_from_models_scale_traffic_and_rollback(
    demo_ws: Workspace, serve_venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_SERVE_VENV", str(serve_venv))
    monkeypatch.setenv("WORKBENCH_LOCAL_RUNTIME", "process")
    app = make_app(demo_ws, start="models")
    states: set[str] = set()
    try:
        async with app.run_test(size=(120, 34)) as pilot:
            await settle(pilot)
            models = app.screen
            assert isinstance(models, ModelsScreen) and len(models.rows) >= 2
            older, newer = models.rows[1], models.rows[0]
            assert older.name == newer.name == "digits"

            def deployments() -> DeploymentsScreen:
                screen = app.screen
                assert isinstance(screen, DeploymentsScreen)
                return screen

            def note_states() -> None:
                if isinstance(app.screen, DeploymentsScreen):
                    states.update(r.state for r in app.screen.rows)

            def serving(version: str, ready: int) -> Callable[[], bool]:
                def check() -> bool:  # False while another screen is still on top
                    if not isinstance(app.screen, DeploymentsScreen):
                        return False
                    rows = app.screen.rows
                    return any(r.version == version and r.state == "available" and r.ready == ready
                               for r in rows)
                return check

            # d on the older version: confirm, then the Deployments screen shows the rollout
            models.query_one(DataTable).move_cursor(row=1)
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, DeploymentsScreen), "the Deployments screen")
            await wait_for(pilot, serving(older.version, 1), "the first deploy", 120, note_states)
            assert states & {"progressing", "building"}, states  # the rollout was visible while it ran
            row = deployments().rows[0]
            assert (row.name, row.model, row.desired, row.ready) == ("digits", "digits", 1, 1)

            def table_state() -> str:  # the table is redrawn by the screen's next poll
                table = deployments().query_one(DataTable)
                state = table.get_row_at(0)[5] if table.row_count else ""
                return str(getattr(state, "plain", state))

            await wait_for(pilot, lambda: table_state() == "available", "the table to show available")
            assert row.url.startswith("http://")

            # a second version from the Models screen: a rolling update of the same deployment
            await pilot.press("4")
            await wait_for(pilot, lambda: isinstance(app.screen, ModelsScreen) and bool(app.screen.rows),
                           "the Models screen")
            app.screen.query_one(DataTable).move_cursor(row=0)
            await pilot.press("d", "y")
            await wait_for(pilot, serving(newer.version, 1), "the rolling update", 120, note_states)

            # + scales to two replicas, live
            await pilot.press("plus")
            await wait_for(pilot, serving(newer.version, 2), "two ready replicas", 120, note_states)

            # predictions: the traffic charts fill in (request rate, error rate, latency)
            for _ in range(8):
                answer = await asyncio.to_thread(demo_ws.deployments.predict, "digits", REQUEST)
                assert answer["outputs"][0]["shape"][0] == 1

            def charted() -> bool:
                rate = deployments().query_one("#traffic-rate", MetricChart).curves
                latency = deployments().query_one("#traffic-latency", MetricChart).curves
                return bool(rate and max(rate[0].series.values) > 0 and latency
                            and max(latency[0].series.values) > 0)

            await wait_for(pilot, charted, "the traffic charts")
            errors = deployments().query_one("#traffic-errors", MetricChart).curves
            assert errors and max(errors[0].series.values) == 0.0

            # r asks first, then rolls back to the older version with the same replicas
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirm dialog")
            await pilot.press("y")
            await wait_for(pilot, serving(older.version, 2), "the rollback", 120, note_states)
            history = [(r.action, r.version) for r in demo_ws.deployments.history("digits")]
            assert history == [("deploy", older.version), ("deploy", newer.version),
                               ("scale", newer.version), ("rollback", older.version)]
    finally:
        for dep in demo_ws.deployments.list():
            demo_ws.deployments.undeploy(dep.name)
