"""The transfer layer: a small interface over object storage, with a ``file://`` and an S3 implementation.

Everything the remote needs is four operations on keys (posix paths below the remote's prefix):
``put_if_absent`` (a conditional write: ``If-None-Match: *`` on S3, ``O_EXCL`` + rename on a folder),
``get``, ``exists`` and ``list``. Objects are immutable and named by content or by a unique name, so
nothing is ever overwritten and two writers never clash.

The S3 client is obstore (Rust's ``object_store``): about 20 ms to import against boto3's 700 ms,
and no Python dependencies (boto3's botocore pins ``python-dateutil<3`` while the kubernetes client
37 needs ``>=3``); see docs/remote.md for the measurements. Credentials come only from the standard
AWS sources (environment variables, then the shared credentials and config files for
``AWS_PROFILE``); they are never stored by Workbench. Every client error becomes a one-line
:class:`RemoteError`.
"""

from __future__ import annotations

import configparser
import errno
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from workbench.errors import WorkbenchError


class RemoteError(WorkbenchError):
    """A remote that cannot be reached, read or written (one line, exit status 2)."""


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote lives: ``s3://bucket/prefix`` (with an optional endpoint and region) or ``file:///path``."""

    url: str
    endpoint_url: str = ""
    region: str = ""

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def key(self) -> str:
        """Identifies the storage location for local bookkeeping (what was pushed where)."""
        endpoint = self.endpoint_url
        if not endpoint and self.scheme == "s3":
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL", "")
        return f"{self.url}|{endpoint.rstrip('/')}"


def parse_url(url: str) -> str:
    """Normalise a remote URL, or raise a one-line error saying what is accepted."""
    text = url.strip()
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise RemoteError(f"remote URL {url!r} names no bucket", "write it as s3://BUCKET/PREFIX")
        prefix = parsed.path.strip("/")
        return f"s3://{parsed.netloc}/{prefix}" if prefix else f"s3://{parsed.netloc}"
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise RemoteError(f"remote URL {url!r} is not an absolute file URL", "write it as file:///ABS/PATH")
        return "file://" + unquote(parsed.path).rstrip("/")
    if text and not parsed.scheme and "://" not in text:  # a folder, as DVC takes one: /mnt/share/proj
        folder = os.path.abspath(os.path.expanduser(text))
        return "file://" + (folder.rstrip("/") or "/")
    raise RemoteError(f"unsupported remote URL {url!r}",
                      "use s3://BUCKET/PREFIX, file:///ABS/PATH or a folder's path")


class Transport(Protocol):
    """The four operations push and pull need. Keys are posix paths below the remote's prefix."""

    spec: RemoteSpec

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``data`` unless ``key`` exists; True when written now, False when it was already there."""

    def get(self, key: str) -> bytes:
        """The bytes at ``key`` (RemoteError if missing)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object whose key starts with ``prefix``."""

    def check(self) -> None:
        """Raise a one-line RemoteError when the remote cannot be listed (bad credentials, no bucket...)."""


def open_transport(spec: RemoteSpec) -> Transport:
    if spec.scheme == "file":
        return FileTransport(spec)
    return S3Transport(spec)


# -- file:// (a shared folder, e.g. NFS) ---------------------------------------------------------
_tmp_counter = iter(range(1 << 62))
_tmp_lock = threading.Lock()


class FileTransport:
    """A folder as a remote: objects are files, written to a temporary name and linked into place."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.root = Path(spec.url[len("file://"):])

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        with _tmp_lock:
            n = next(_tmp_counter)
        tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{n}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
            try:
                os.link(tmp, path)  # atomic and exclusive: fails if another writer got there first
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise RemoteError(f"cannot write {key} to {self.root}: {exc.strerror or exc}",
                              "check the folder exists and is writable") from None
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise RemoteError(f"{key} is missing from the remote {self.spec.url}",
                              "it was never pushed or was deleted") from None
        except OSError as exc:
            raise RemoteError(f"cannot read {key} from {self.root}: {exc.strerror or exc}",
                              "check the folder's permissions") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self.root / prefix.rstrip("/") if prefix.endswith("/") else self.root
        if not base.is_dir():
            return
        for folder, _dirs, names in os.walk(base):
            for name in names:
                if name.startswith(".tmp-"):
                    continue
                full = os.path.join(folder, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    try:
                        yield key, os.stat(full).st_size
                    except FileNotFoundError:
                        continue

    def check(self) -> None:
        if not self.root.is_dir():
            raise RemoteError(f"the remote folder {self.root} does not exist",
                              "create it (mkdir -p) or fix the URL")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise RemoteError(f"cannot read the remote folder {self.root}", "check its permissions")


# -- S3 (obstore) --------------------------------------------------------------------------------
def aws_settings(region: str = "", endpoint_url: str = "") -> dict[str, str]:
    """Credentials, region and endpoint from the standard AWS sources, read now and never stored.

    Order: explicit arguments (the remote's settings) for endpoint and region; ``AWS_ACCESS_KEY_ID``
    / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` from the environment, else the profile
    ``AWS_PROFILE`` (or ``default``) of ``AWS_SHARED_CREDENTIALS_FILE`` (``~/.aws/credentials``) and
    ``AWS_CONFIG_FILE`` (``~/.aws/config``); ``AWS_ENDPOINT_URL``/``AWS_REGION`` likewise.
    """
    env = os.environ
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    creds = _ini(env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), profile)
    conf = _ini(env.get("AWS_CONFIG_FILE", "~/.aws/config"),
                profile if profile == "default" else f"profile {profile}")
    out: dict[str, str] = {}
    key_id = env.get("AWS_ACCESS_KEY_ID") or creds.get("aws_access_key_id") or conf.get("aws_access_key_id")
    secret = (env.get("AWS_SECRET_ACCESS_KEY") or creds.get("aws_secret_access_key")
              or conf.get("aws_secret_access_key"))
    token = env.get("AWS_SESSION_TOKEN") if env.get("AWS_ACCESS_KEY_ID") else (
        creds.get("aws_session_token") or conf.get("aws_session_token"))
    if key_id and secret:
        out["access_key_id"] = key_id
        out["secret_access_key"] = secret
        if token:
            out["token"] = token
    endpoint = (endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
                or conf.get("endpoint_url") or "")
    if endpoint:
        out["endpoint"] = endpoint.rstrip("/")
    out["region"] = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or conf.get("region") \
        or "us-east-1"
    return out


def _ini(path: str, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(os.path.expanduser(path), encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    return dict(parser[section]) if parser.has_section(section) else {}


class S3Transport:
    """An S3-compatible bucket (AWS, Ceph RGW, ODF, SeaweedFS ...) through obstore."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        rest = spec.url[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self._settings = aws_settings(spec.region, spec.endpoint_url)
        self.endpoint = self._settings.get("endpoint", "")
        self._store: Any = None
        self._lock = threading.Lock()

    def _where(self) -> str:
        return f"{self.spec.url}" + (f" at {self.endpoint}" if self.endpoint else "")

    @property
    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                self._store = self._make_store()
            return self._store

    def _make_store(self) -> Any:
        try:
            from obstore.store import S3Store
        except ImportError:
            raise RemoteError("S3 remotes need the obstore package",
                              "pip install 'workbench-mlops[remote]'") from None
        settings = dict(self._settings)
        config: dict[str, Any] = {"region": settings.pop("region")}
        if "endpoint" in settings:
            config["endpoint"] = settings.pop("endpoint")
        if "access_key_id" in settings:
            config["access_key_id"] = settings.pop("access_key_id")
            config["secret_access_key"] = settings.pop("secret_access_key")
            if "token" in settings:
                config["session_token"] = settings.pop("token")
        else:
            config["skip_signature"] = False
        client = {"allow_http": str(config.get("endpoint", "")).startswith("http://"),
                  "connect_timeout": timedelta(seconds=10), "timeout": timedelta(seconds=300)}
        retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=30),
                 "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2),
                             "base": 2}}
        try:
            return S3Store(self.bucket, prefix=self.prefix or None, config=config,  # type: ignore[arg-type]
                           client_options=client, retry_config=retry)  # type: ignore[arg-type]
        except Exception as exc:
            raise RemoteError(f"cannot configure the remote {self.spec.url}: {_first_line(exc)}",
                              "check the URL, --endpoint-url and region") from None

    def _error(self, exc: Exception, doing: str) -> RemoteError:
        return classify_s3_error(exc, doing, self._where(), self.bucket)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self.store, key, data, mode="create", use_multipart=len(data) > 64 * 1024 * 1024)
            return True
        except (AlreadyExistsError, PreconditionError):
            return False
        except Exception as exc:
            raise self._error(exc, f"writing {key}") from None

    def get(self, key: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self.store, key).bytes())
        except Exception as exc:
            raise self._error(exc, f"reading {key}") from None

    def exists(self, key: str) -> bool:
        import obstore

        try:
            obstore.head(self.store, key)
            return True
        except Exception as exc:
            if _not_found(exc):
                return False
            raise self._error(exc, f"checking {key}") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        import obstore

        try:
            for page in obstore.list(self.store, prefix, chunk_size=1000):
                for meta in page:
                    yield str(meta["path"]), int(meta["size"])
        except Exception as exc:
            raise self._error(exc, f"listing {prefix}") from None

    def check(self) -> None:
        import obstore

        try:
            stream = obstore.list(self.store, "bundles/", chunk_size=1)
            next(iter(stream), None)
        except Exception as exc:
            raise self._error(exc, "listing the remote") from None


def _not_found(exc: Exception) -> bool:
    return isinstance(exc, FileNotFoundError) or type(exc).__name__ == "NotFoundError"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


_STATUS_403 = re.compile(r"(?i)(?:status(?: code)?[: =]*403\b|\b403 forbidden)")
"""A 403 answer as S3 clients print it ("status: 403", "403 Forbidden"), not any "403" in the text."""


def classify_s3_error(exc: Exception, doing: str, where: str, bucket: str) -> RemoteError:
    """One line for a client error: which remote, what went wrong, and what to do."""
    name = type(exc).__name__
    text = str(exc).split("Debug source:")[0]
    low = text.lower()
    if "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket does not" in low:
        return RemoteError(f"the bucket {bucket!r} does not exist on {where}",
                           "create it first or fix the remote URL")
    if "169.254.169.254" in text or "latest/api/token" in text or ("missing" in low and "credential" in low):
        return RemoteError(f"no AWS credentials found for {where}",
                           "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    # A request that never got an answer first: its text (retry counts, elapsed times such as
    # "in 4.0403s") must not be read as a status code.
    if ("error sending request" in low or "connection refused" in low or "dns" in low
            or "timed out" in low or (isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED)):
        return RemoteError(f"cannot reach {where} while {doing}",
                           "check the endpoint URL and that the server is running, then retry")
    if (name in ("UnauthenticatedError", "PermissionDeniedError") or "invalidaccesskeyid" in low
            or "signaturedoesnotmatch" in low or "accessdenied" in low or _STATUS_403.search(text)):
        return RemoteError(f"access denied by {where} while {doing}",
                           "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if _not_found(exc):
        return RemoteError(f"{doing}: not found on {where}", "it was never pushed or was deleted")
    if "connect" in low or "timeout" in low:
        return RemoteError(f"cannot reach {where} while {doing}",
                           "check the endpoint URL and that the server is running, then retry")
    return RemoteError(f"{doing} on {where} failed: {_first_line(exc)}", "retry; re-running resumes")
