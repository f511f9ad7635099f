"""The executor fixtures (a real Docker daemon) for the boundary tests."""

from __future__ import annotations

from tests.executors.conftest import docker_client

__all__ = ["docker_client"]
