"""Whether a cluster's serving image can load a model version, checked before any rollout.

A model records the framework version it was saved with; an image holds one version of each
framework. The image's versions are declared in ``[deploy] image_frameworks`` (``["scikit-learn==1.5.2"]``,
written beside ``[deploy] image``): nothing can be learnt about an image in a registry without pulling
it. Rules, per framework package:

- ``scikit-learn``: a pickle loads only under the version that wrote it (scikit-learn promises
  nothing across versions and changes estimators' internals between minor releases): the image must
  have the same major.minor version;
- ``xgboost``, ``lightgbm``, ``torch``: their saved formats are read by later versions: the image's
  major.minor must be at least the model's.

A mismatch is one line naming both versions and what to do. An image whose versions are not declared
is checked against what it is known to hold when it is a server's default image (MLServer's
``1.7.1-sklearn``, KServe's ``sklearnserver``: :data:`workbench.deploy.servers.DEFAULT_IMAGE_FRAMEWORKS`);
any other undeclared image is not checked: ``docs/deploy.md`` says so.
"""

from __future__ import annotations

import re

from workbench.deploy.types import DeploySpec
from workbench.errors import ConfigError, DeployError

SAME_MINOR = frozenset({"scikit-learn"})
AT_LEAST = frozenset({"xgboost", "lightgbm", "torch"})
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][0-9A-Za-z.+-]*)\s*$")


def check_spec(spec: DeploySpec, package: str) -> None:
    """:func:`check` for one revision, against what its image is declared to hold."""
    from workbench.deploy import manifests, servers

    image = manifests.image(spec)
    frameworks = declared(spec.image_frameworks) or servers.image_frameworks(image)
    check(image, frameworks, package, spec.model.framework_version, f"{spec.model.name}:{spec.model.version}")


def declared(items: list[str]) -> dict[str, str]:
    """``["scikit-learn==1.5.2"]`` -> ``{"scikit-learn": "1.5.2"}``; a bad entry is a one-line error."""
    out: dict[str, str] = {}
    for item in items:
        found = _PIN.match(str(item))
        if found is None:
            raise ConfigError(f"config 'deploy.image_frameworks' has {item!r}, not PACKAGE==VERSION",
                              'write image_frameworks = ["scikit-learn==1.5.2"]')
        out[found.group(1).lower().replace("_", "-")] = found.group(2)
    return out


def _minor(version: str) -> tuple[int, int]:
    major, minor = [*(int(p) for p in re.findall(r"\d+", version)[:2]), 0, 0][:2]
    return major, minor


def check(image: str, frameworks: dict[str, str], package: str, model_version: str | None,
          model: str) -> None:
    """Refuse, in one line, an image that cannot load ``model`` (saved with ``package`` at
    ``model_version``); a version not recorded or not declared is not checked."""
    have = frameworks.get(package)
    if not model_version or not have or package not in SAME_MINOR | AT_LEAST:
        return
    mine, theirs = _minor(model_version), _minor(have)
    if package in SAME_MINOR and mine == theirs:
        return
    if package in AT_LEAST and theirs >= mine:
        return
    wanted = f"{mine[0]}.{mine[1]}.x" if package in SAME_MINOR else f"{mine[0]}.{mine[1]} or later"
    why = ("a pickled model loads only under the same minor version" if package in SAME_MINOR
           else "an older version cannot read a newer model")
    raise DeployError(
        f"the serving image {image} has {package} {have}, and {model} was saved with {package} "
        f"{model_version}: {why}",
        f"set [deploy] image to an image with {package} {wanted} and declare it in "
        f'[deploy] image_frameworks = ["{package}=={model_version}"], or retrain the model under {have}',
    )
