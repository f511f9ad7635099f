"""Fixtures of the executor tests: a real Docker daemon (skip with the reason where none can run,
fail where ``WORKBENCH_REQUIRE_DOCKER=1`` says it was set up)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import docker_unavailable

IMAGE = os.environ.get("WORKBENCH_TEST_IMAGE", "workbench-python:bookworm")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    from workbench.errors import ExecutorError
    from workbench.executors.docker import connect

    try:
        client = connect(timeout=60)
    except ExecutorError as exc:
        docker_unavailable(f"no Docker daemon: {exc.one_line()} (scripts/docker_setup.sh starts one)")
    try:
        client.images.get(IMAGE)
    except Exception:
        docker_unavailable(f"image {IMAGE} missing: run scripts/docker_setup.sh to build it offline")
    yield client
    client.close()
