"""The API server's service and pod proxy for the cluster double (what ``workbench predict`` and
``metrics`` call): ``services/NAME[:PORT]/proxy/...`` goes to a ready pod selected by the Service,
in turn (as its endpoints), its ``targetPort`` resolved by name from the pod's container ports;
``pods/NAME[:PORT]/proxy/...`` to that pod. There is no retry on failure (a Service has none)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.web

from tests.kube.controllers import labels_of, name_of, ready

if TYPE_CHECKING:
    from tests.kube.controllers import ClusterDouble

Obj = dict[str, Any]
PROXY = re.compile(r"^/api/v1/namespaces/([^/]+)/(services|pods)/([^/:]+)(?::([^/]+))?/proxy(/.*)?$")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                                      "code": code, "reason": reason, "message": message}, status=code)


async def serve_proxy(cluster: ClusterDouble, request: aiohttp.web.BaseRequest,
                      body: bytes) -> aiohttp.web.StreamResponse | None:
    """``services/NAME[:PORT]/proxy/...`` to a ready pod behind the Service (in turn, as the
    Service's endpoints), ``pods/NAME[:PORT]/proxy/...`` to that pod; no retry on failure."""
    match = PROXY.match(request.path)
    if match is None:
        return None
    _, kind, name, port, rest = match.groups()
    objects = await cluster.read_objects()
    if kind == "services":
        service = next((s for s in objects.get("services", []) if name_of(s) == name), None)
        if service is None:
            return _status(404, "NotFound", f'services "{name}" not found')
        ports = service["spec"].get("ports") or []
        chosen = next((p for p in ports if port in (None, p.get("name"), str(p.get("port")))), None)
        target = (chosen or {}).get("targetPort", (chosen or {}).get("port"))
        pods = [p for p in objects.get("pods", []) if ready(p) and all(
            labels_of(p).get(k) == v for k, v in (service["spec"].get("selector") or {}).items())]
    else:
        pods = [p for p in objects.get("pods", []) if name_of(p) == name]
        target = port or 80
    if not pods:
        return _status(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    cluster.turn += 1
    pod = sorted(pods, key=name_of)[cluster.turn % len(pods)]
    number = target
    if not str(target).isdigit():
        number = next((p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
                       if p.get("name") == target), 0)
    ip = (pod.get("status") or {}).get("podIP", "127.0.0.1")
    url = f"http://{ip}:{number}{rest or '/'}"
    try:
        async with aiohttp.ClientSession() as session, session.request(
                request.method, url, params=request.query, data=body or None,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
                timeout=aiohttp.ClientTimeout(total=30)) as answer:
            data = await answer.read()
            return aiohttp.web.Response(body=data, status=answer.status,
                                        content_type=answer.content_type or "application/octet-stream")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _status(503, "ServiceUnavailable", f"error trying to reach service: {exc}")
