"""Build a serving image that can load a model version: MLServer and the exact framework version.

The local target already builds, per framework version, a venv with MLServer, the runtime and the
framework pinned to the version the model was saved with (:func:`serving.ensure_serve_venv`). This
module puts that venv's ``site-packages`` on top of a base image whose Python has the host's version
(``workbench-python:bookworm``, built offline by ``scripts/docker_setup.sh``, or any Debian bookworm
Python image) with a generated Containerfile, through ``docker build``; nothing is downloaded during
the build. The image:

- runs ``mlserver start DIR`` as the cluster manifests do (a small ``mlserver`` launcher on the path);
- works under OpenShift's restricted rules: any user id in group 0, read-only root, ``HOME=/tmp``;
- declares what it holds in labels (``dev.workbench.frameworks``: ``scikit-learn==1.9.1``), which
  :func:`frameworks_of` reads back so the deploy check (:mod:`workbench.deploy.images`) knows them.

``push`` sends it to a registry (``--registry``) the cluster pulls from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from workbench.deploy import serving
from workbench.errors import DeployError

FRAMEWORKS_LABEL = "dev.workbench.frameworks"
BUILD_LABEL = "dev.workbench.build"
"""A digest of the Containerfile and the venv it copies: an image with the same one is reused."""
SITE = "/opt/workbench-serve/site-packages"
LAUNCHER = '#!/bin/sh\nexec python3 -m mlserver.cli.main "$@"\n'


def containerfile(base: str, labels: dict[str, str]) -> str:
    """The generated Containerfile (the context holds ``site-packages/`` and ``mlserver``)."""
    label_lines = " \\\n      ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return (
        f"FROM {base}\n"
        f"COPY site-packages {SITE}\n"
        "COPY mlserver /usr/local/bin/mlserver\n"
        f"ENV PYTHONPATH={SITE} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp\n"
        # Bytecode made once here: a pod's root is read-only and it may not write any, so without
        # it every replica compiled MLServer and scikit-learn at start (71-74 s to ready against
        # 21.5 s with it, two replicas at load 12).
        f"RUN python3 -m compileall -q -j 0 {SITE}\n"
        f"LABEL {label_lines}\n"
        "USER 1001:0\n"
        "WORKDIR /tmp\n"
    )


def image_tag(registry: str, runtime: serving.Runtime, framework_version: str) -> str:
    """``REGISTRY/workbench-serve:<runtime>-<framework version>-mlserver<version>``."""
    name = f"{registry.rstrip('/')}/workbench-serve" if registry else "workbench-serve"
    return f"{name}:{runtime.framework}-{framework_version}-mlserver{serving.MLSERVER_VERSION}"


def _fill(context: Path, site: Path) -> None:
    """Hard-link the venv's files into the build context (a copy where links cannot be made)."""
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(site, context / "site-packages", copy_function=link,
                    ignore=shutil.ignore_patterns("__pycache__"))


def build(client: Any, venv: Path, runtime: serving.Runtime, framework_version: str, *, tag: str,
          base: str) -> dict[str, str]:
    """Build ``tag`` from ``base`` and the serving ``venv`` (reusing an image of that tag built from
    the same Containerfile and venv); returns the frameworks it declares."""
    if sys.version_info[:2] != (3, 11):
        raise DeployError(f"a serving image is built from this machine's Python {sys.version_info[0]}."
                          f"{sys.version_info[1]} packages onto a Python 3.11 base image",
                          "build from a Python 3.11 install of Workbench")
    frameworks = {runtime.framework_package: framework_version}
    labels = {FRAMEWORKS_LABEL: ",".join(f"{k}=={v}" for k, v in sorted(frameworks.items())),
              "dev.workbench.mlserver": serving.MLSERVER_VERSION}
    text = containerfile(base, labels)
    labels[BUILD_LABEL] = hashlib.sha256(f"{text}\n{venv.resolve()}".encode()).hexdigest()[:16]
    try:
        if (client.images.get(tag).labels or {}).get(BUILD_LABEL) == labels[BUILD_LABEL]:
            return frameworks
    except Exception:
        pass  # not built yet
    site = serving.venv_site_packages(venv)
    with tempfile.TemporaryDirectory(prefix="workbench-image-", dir=venv.parent) as tmp:
        context = Path(tmp)
        _fill(context, site)
        (context / "mlserver").write_text(LAUNCHER, encoding="utf-8")
        (context / "mlserver").chmod(0o755)
        (context / "Containerfile").write_text(containerfile(base, labels), encoding="utf-8")
        try:
            client.images.build(path=str(context), dockerfile="Containerfile", tag=tag, rm=True,
                                forcerm=True, pull=False)
        except Exception as exc:
            words = " ".join(str(exc).split())[:300]
            raise DeployError(f"docker build of {tag} failed: {words}",
                              f"check that the base image {base} exists (scripts/docker_setup.sh)") from None
    return frameworks


def build_and_push(venv: Path, runtime: serving.Runtime, framework_version: str, registry: str,
                   base: str = "") -> tuple[str, list[str]]:
    """:func:`build` (on this machine's Docker daemon) and, with a ``registry``, :func:`push`; the
    tag and what it holds (``["scikit-learn==1.9.1"]``)."""
    from workbench.deploy import local

    tag = image_tag(registry, runtime, framework_version)
    with local.docker_client(timeout=900) as client:
        held = build(client, venv, runtime, framework_version, tag=tag, base=base or local.local_image())
        if registry:
            push(client, tag)
    return tag, [f"{k}=={v}" for k, v in sorted(held.items())]


def frameworks_of(client: Any, tag: str) -> dict[str, str]:
    """The frameworks an image built here declares (empty for any other image)."""
    from workbench.deploy import images

    try:
        labels = client.images.get(tag).labels or {}
    except Exception:
        return {}
    text = str(labels.get(FRAMEWORKS_LABEL, ""))
    return images.declared([p for p in text.split(",") if p])


def push(client: Any, tag: str) -> None:
    """Push ``tag`` to its registry; a failure is one line."""
    repository, _, version = tag.rpartition(":")
    try:
        for event in client.images.push(repository, tag=version, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise DeployError(f"cannot push {tag}: {event['error']}",
                                  "log in to the registry: docker login")
    except DeployError:
        raise
    except Exception as exc:
        raise DeployError(f"cannot push {tag}: {' '.join(str(exc).split())[:300]}",
                          "check the registry address and docker login") from None
