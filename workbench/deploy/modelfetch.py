"""Runs in a model-server pod's init container: fetch the model version from the project's remote,
verify it, and lay out the model folder the server reads.

A cluster deployment with a default S3 remote does not share one volume between its replicas (a
ReadWriteOnce volume attaches to one node only: replicas on other nodes hang on Multi-Attach). The
deploying host uploads the model file once to ``serving/sha256/<hex>`` below the remote's prefix
(named by its SHA-256, written only if absent) and every pod fetches it itself into an ``emptyDir``.

This file is shipped to the pod in a ConfigMap and run by the serving image's own ``python3``, so it
uses the standard library only (no Workbench package, no compiled modules, any Python 3.8+): a GET
signed with AWS Signature Version 4, streamed to a temporary file while its SHA-256 is computed; the
size and the hash must match the plan, else the pod fails with one line (on stderr and in
``/dev/termination-log``, which ``kubectl describe`` and ``workbench deployments`` show). Retries
three times on a connection error or a 5xx answer. Then the small files of the model folder
(``model-settings.json``, the runtime) are copied in from the ConfigMap's folder.

Configuration comes from the environment: ``WORKBENCH_MODEL_FETCH`` (JSON: ``bucket``, ``key``,
``sha256``, ``size``, ``dest``, ``filename``, ``files`` (the folder to copy) and ``region``),
``AWS_ENDPOINT_URL`` (path-style requests to it; else AWS's virtual-hosted address) and the standard
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` from a Secret (none:
an unsigned request, for a public bucket).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import sys
import time
import urllib.parse

PLAN_ENV = "WORKBENCH_MODEL_FETCH"
TERMINATION_LOG = "/dev/termination-log"
ATTEMPTS = 3
BLOCK = 1 << 20
EXIT_FAILED = 96


class FetchError(Exception):
    """A failure told in one line."""


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/-_.~")


def signed_headers(method: str, host: str, path: str, region: str, key_id: str, secret: str,
                   token: str = "", now: datetime.datetime | None = None) -> dict[str, str]:
    """The headers of an S3 request signed with Signature Version 4 (unsigned payload)."""
    now = now or datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {"host": host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n]}" for n in names), "",
                           ";".join(names), "UNSIGNED-PAYLOAD"])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return headers


def _address(plan: dict[str, object], env: dict[str, str]) -> tuple[str, str, str]:
    """(scheme, host[:port], path) of the object: path-style at an endpoint, else AWS's address."""
    bucket, key = str(plan["bucket"]), str(plan["key"])
    endpoint = (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "").rstrip("/")
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        base = parts.path.rstrip("/")
        return parts.scheme or "https", parts.netloc, _quote(f"{base}/{bucket}/{key}")
    region = str(plan.get("region") or "us-east-1")
    return "https", f"{bucket}.s3.{region}.amazonaws.com", _quote(f"/{key}")


def download(plan: dict[str, object], env: dict[str, str], target: str) -> None:
    """GET the object into ``target``, checking its size and SHA-256 as it arrives."""
    scheme, host, path = _address(plan, env)
    region = str(plan.get("region") or env.get("AWS_REGION") or "us-east-1")
    key_id, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    headers = (signed_headers("GET", host, path, region, key_id, secret, env.get("AWS_SESSION_TOKEN", ""))
               if key_id and secret else {"host": host})
    where = f"s3://{plan['bucket']}/{plan['key']}"
    conn_cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(host, timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        if answer.status != 200:
            body = answer.read(2000).decode("utf-8", "replace")
            code = body.split("<Code>", 1)[1].split("<", 1)[0] if "<Code>" in body else answer.reason
            raise FetchError(f"{where} answered {answer.status} {code}") if answer.status < 500 else \
                ConnectionError(f"{where} answered {answer.status} {code}")
        digest, size = hashlib.sha256(), 0
        with open(target, "wb") as out:
            while True:
                block = answer.read(BLOCK)
                if not block:
                    break
                digest.update(block)
                size += len(block)
                out.write(block)
    finally:
        conn.close()
    if size != int(str(plan["size"])):
        raise FetchError(f"{where} has {size} bytes, the model version has {plan['size']}: it is damaged")
    if digest.hexdigest() != plan["sha256"]:
        raise FetchError(f"{where} does not match its SHA-256 {str(plan['sha256'])[:16]}: it is damaged")


def fetch(plan: dict[str, object], env: dict[str, str]) -> str:
    """Fill ``plan["dest"]`` with the verified model and the folder's small files; returns the model path."""
    dest = str(plan["dest"])
    os.makedirs(dest, exist_ok=True)
    final = os.path.join(dest, str(plan["filename"]))
    partial = final + ".partial"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            download(plan, env, partial)
            break
        except (OSError, http.client.HTTPException) as exc:
            if attempt == ATTEMPTS:
                raise FetchError(f"cannot fetch s3://{plan['bucket']}/{plan['key']}: "
                                 f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
            time.sleep(attempt)
    os.replace(partial, final)
    files = str(plan.get("files") or "")
    if files and os.path.isdir(files):
        for name in sorted(os.listdir(files)):
            source = os.path.join(files, name)
            if not name.startswith(".") and os.path.isfile(source):  # a ConfigMap's ..data links skipped
                shutil.copyfile(source, os.path.join(dest, name))
    return final


def main() -> int:
    try:
        plan = json.loads(os.environ[PLAN_ENV])
    except (KeyError, ValueError):
        print(f"workbench: {PLAN_ENV} is missing or not JSON", file=sys.stderr)
        return 2
    try:
        path = fetch(plan, dict(os.environ))
    except FetchError as exc:
        message = f"model fetch failed: {exc}"
        print(f"workbench: {message}", file=sys.stderr, flush=True)
        if os.path.exists(TERMINATION_LOG):
            try:
                with open(TERMINATION_LOG, "w", encoding="utf-8") as log:
                    log.write(message + "\n")
            except OSError:
                pass
        return EXIT_FAILED
    print(f"workbench: fetched {path} ({plan['size']} bytes, sha256 {str(plan['sha256'])[:16]} verified)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
