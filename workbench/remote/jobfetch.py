"""Runs inside a Docker or Kubernetes job: fetch the input snapshot from the remote, run the command,
push the outputs back.

When the project has a default remote, a container job does not get its files staged through the
Workbench host. The host pushes the input snapshot's objects to the remote and starts the job with
this module as its entry point (``python3 -S -m workbench.remote.jobfetch run -- COMMAND...``; the
Kubernetes executor splits it into ``fetch`` in an init container and ``run --no-fetch`` in the main
one). Its plan comes in the environment (``WORKBENCH_JOBFETCH_PLAN``, JSON: the remote's URL, endpoint
and region, the snapshot's root tree, the folder to fill, the run id); credentials come only from the
standard AWS variables the executor passed at launch, and are never written anywhere.

``fetch`` walks the snapshot's trees from the remote and writes every file into the job's work
folder, each object verified (BLAKE3 of its content, every chunk of a large file and the whole), so a
missing or damaged object fails the job with one line naming it (on stderr, in the reason file the
host reads, and in ``/dev/termination-log`` for Kubernetes). It then saves the size and mtime of what
it wrote. ``run`` starts the command (SIGTERM and SIGINT are passed on), and after it exits stores
every file the command created or changed (chunked like the host's cache does) as objects on the
remote, then writes ``jobs/<run>/outputs.json`` listing them: the host fetches those (verified) and
records the run from them. The exit status is the command's; a fetch or push failure is
:data:`EXIT_FETCH` / :data:`EXIT_PUSH`.

Only the standard library, the workbench package and the compiled modules the executor mounts
(blake3, zstandard, pyfastcdc, obstore for S3) are used; ``-S`` keeps the capture sitecustomize out
of this process, so its own reads are not taken for the run's inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PLAN_ENV = "WORKBENCH_JOBFETCH_PLAN"
DEPS_ENV = "WORKBENCH_JOBFETCH_DEPS"
EXIT_FETCH = 97
"""Exit status when the inputs could not be fetched (the reason file says why)."""
EXIT_PUSH = 98
"""Exit status when the command ran but its outputs could not be pushed to the remote."""
OUTPUTS_FORMAT = "workbench-job-outputs/1"
WORKERS = 8
TERMINATION_LOG = "/dev/termination-log"


def outputs_key(run_id: str) -> str:
    """Where a job lists the outputs it pushed, below the remote's prefix."""
    return f"jobs/{run_id}/outputs.json"


def _setup_path() -> None:
    deps = os.environ.get(DEPS_ENV, "")
    for folder in reversed([p for p in deps.split(":") if p]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


class JobFetchError(Exception):
    """A failure to report in one line, with the exit status to end with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _one_line(exc: BaseException) -> str:
    one = getattr(exc, "one_line", None)
    text = one() if callable(one) else (str(exc) or type(exc).__name__)
    return " ".join(str(text).split())


class Remote:
    """The transport and the verification helpers, imported once the deps are on the path."""

    def __init__(self, plan: dict[str, Any]) -> None:
        from workbench.remote.transport import RemoteSpec, open_transport
        from workbench.versioning.blobs import BlobStore

        self.plan = plan
        self.spec = RemoteSpec(plan["url"], plan.get("endpoint_url", ""), plan.get("region", ""))
        self.transport = open_transport(self.spec)
        self.checker = BlobStore(Path(tempfile.gettempdir()) / "workbench-jobfetch-unused")

    def get(self, digest: str) -> bytes:
        return self.transport.get(f"objects/{digest[:2]}/{digest[2:]}")

    def content(self, digest: str) -> bytes:
        """A raw or zstd object's content, verified against its address."""
        return self.checker.decode_received(digest, self.get(digest))


# -- fetch ----------------------------------------------------------------------------------------
def fetch(plan: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Materialise the snapshot into ``plan["dest"]``; returns the manifest ``{path: (size, mtime_ns)}``."""
    from workbench.versioning.trees import decode_tree

    remote = Remote(plan)
    dest = Path(plan["dest"])
    dest.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, int, str]] = []
    links: list[tuple[str, str]] = []
    stack: list[tuple[str, str]] = [("", plan["root_tree"])]
    while stack:
        prefix, tree = stack.pop()
        for name, kind, mode, _size, ref in decode_tree(tree, remote.content(tree)):
            rel = f"{prefix}{name}"
            if kind == "d":
                (dest / rel).mkdir(exist_ok=True)
                stack.append((rel + "/", ref))
            elif kind == "f":
                files.append((rel, mode, ref))
            else:
                links.append((rel, ref))
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda f: _write_file(remote, dest / f[0], f[2], f[1]), files))
    for rel, target in links:
        _link(dest, rel, target)
    manifest: dict[str, tuple[int, int]] = {}
    for rel in [f[0] for f in files] + [link[0] for link in links]:
        st = os.lstat(dest / rel)
        manifest[rel] = (st.st_size, st.st_mtime_ns)
    return manifest


def _write_file(remote: Remote, path: Path, digest: str, mode: int) -> None:
    import blake3

    from workbench.versioning.blobs import CHUNKED, decode_manifest

    blob = remote.get(digest)
    tmp = path.with_name(f".{path.name}.wbfetch")
    with open(tmp, "wb") as out:
        if blob[:1] == CHUNKED:
            try:
                chunks = decode_manifest(blob[1:])
            except ValueError:
                raise remote.checker.corrupt_received(digest) from None
            whole = blake3.blake3()
            for data in _in_order(remote.content, [c for c, _ in chunks]):
                whole.update(data)
                out.write(data)
            if whole.hexdigest() != digest:
                raise remote.checker.corrupt_received(digest)
        else:
            out.write(remote.checker.decode_received(digest, blob))
    os.chmod(tmp, (mode & 0o777) | 0o600)
    os.replace(tmp, path)


def _in_order(get: Callable[[str], bytes], digests: list[str], window: int = 8) -> Iterator[bytes]:
    """``get(d)`` for each digest, in order, at most ``window`` fetched ahead in parallel (a large
    file comes at the remote's parallel speed while only a few chunks are held in memory)."""
    from collections import deque
    from concurrent.futures import Future

    with ThreadPoolExecutor(min(window, max(1, len(digests)))) as pool:
        ahead: deque[Future[bytes]] = deque()
        for digest in digests:
            ahead.append(pool.submit(get, digest))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _link(dest: Path, rel: str, target: str) -> None:
    """Recreate a symlink of the snapshot, refusing one that would point outside the work folder."""
    import posixpath

    where = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if target.startswith("/") or where == ".." or where.startswith("../"):
        raise JobFetchError(f"the snapshot's link {rel} points outside the project ({target}); refused",
                            EXIT_FETCH)
    os.symlink(target, dest / rel)


# -- push outputs ---------------------------------------------------------------------------------
def changed(dest: Path, manifest: dict[str, tuple[int, int]]) -> list[str]:
    """Regular files and links under ``dest`` that are new or differ in size or mtime from ``manifest``."""
    from workbench.executors.staging import walk_files

    return sorted(rel for rel, st in walk_files(dest) if manifest.get(rel) != (st.st_size, st.st_mtime_ns))


def push_outputs(plan: dict[str, Any], paths: list[str]) -> None:
    """Store ``paths`` (relative to the work folder) as objects on the remote, then list them."""
    from workbench.versioning.blobs import BlobStore
    from workbench.versioning.chunking import ingest

    remote = Remote(plan)
    dest = Path(plan["dest"])
    threshold = int(plan.get("chunk_threshold", 8 * 1024 * 1024))
    listing: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="workbench-out-") as tmp:
        store = BlobStore(Path(tmp))
        store.ensure_dirs()
        links = [rel for rel in paths if os.path.islink(dest / rel)]  # listed, never followed nor sent
        for rel in paths:
            if rel in links:
                continue
            try:
                done = ingest(str(dest / rel), store, threshold)
            except FileNotFoundError:
                continue
            listing.append([rel, done.hash, done.size, done.mode])
        digests = [h for h in {row[1] for row in listing}]
        manifests = [h for h in digests if store.kind(h) == b"C"]
        plain = {h for h in digests if h not in manifests}
        for h in manifests:
            plain.update(c for c, _ in store.chunks(h) or [])

        def send(digest: str) -> None:
            key = f"objects/{digest[:2]}/{digest[2:]}"
            if not remote.transport.exists(key):
                remote.transport.put_if_absent(key, store.read_encoded(digest))

        with ThreadPoolExecutor(WORKERS) as pool:  # content before the manifests that name it
            list(pool.map(send, sorted(plain)))
            list(pool.map(send, manifests))
    body = {"format": OUTPUTS_FORMAT, "run_id": plan["run_id"], "files": listing, "links": links}
    remote.transport.put_if_absent(outputs_key(plan["run_id"]), json.dumps(body).encode())


# -- the entry point ------------------------------------------------------------------------------
def _report(plan: dict[str, Any], message: str) -> None:
    print(f"workbench: {message}", file=sys.stderr, flush=True)
    for target in (plan.get("reason_file"), TERMINATION_LOG):
        if target and (target != TERMINATION_LOG or os.path.exists(target)):
            try:
                Path(target).write_text(message + "\n", encoding="utf-8")
            except OSError:
                pass


def _fetch_step(plan: dict[str, Any]) -> dict[str, tuple[int, int]]:
    short = plan.get("snapshot", "")[:12]
    try:
        manifest = fetch(plan)
    except JobFetchError:
        raise
    except Exception as exc:
        hint = ""
        if isinstance(exc, ImportError):
            version = f"{sys.version_info[0]}.{sys.version_info[1]}"
            hint = (f" (the image's Python {version} cannot load the compiled modules mounted from the host:"
                    " the image needs the host's Python version, or run with --no-remote-inputs)")
        raise JobFetchError(f"cannot fetch the input snapshot {short} from {plan['url']}: {_one_line(exc)}"
                            + hint, EXIT_FETCH) from None
    state = plan.get("state_file")
    if state:
        Path(state).write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def _run_step(plan: dict[str, Any], command: list[str], manifest: dict[str, tuple[int, int]]) -> int:
    env = dict(os.environ)
    for name in (PLAN_ENV, DEPS_ENV, *plan.get("drop_env", [])):  # the remote's credentials stay here
        env.pop(name, None)
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        print(f"workbench: cannot start {command[0]}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    before = {sig: signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
              for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = child.wait()
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    code = 128 - code if code < 0 else code
    try:
        push_outputs(plan, changed(Path(plan["dest"]), manifest))
    except Exception as exc:
        raise JobFetchError(f"cannot push the job's outputs to {plan['url']}: {_one_line(exc)}",
                            EXIT_PUSH) from None
    return code


def main(argv: list[str] | None = None) -> int:
    """``fetch`` | ``run [--no-fetch] -- COMMAND...``; the plan comes from ``WORKBENCH_JOBFETCH_PLAN``."""
    args = list(sys.argv[1:] if argv is None else argv)
    _setup_path()
    try:
        plan = json.loads(os.environ[PLAN_ENV])
    except (KeyError, ValueError):
        print(f"workbench: {PLAN_ENV} is missing or not JSON", file=sys.stderr)
        return 2
    if not args or args[0] not in ("fetch", "run"):
        print("usage: python -m workbench.remote.jobfetch fetch | run [--no-fetch] -- COMMAND...",
              file=sys.stderr)
        return 2
    step, rest = args[0], args[1:]
    try:
        if step == "fetch":
            _fetch_step(plan)
            return 0
        no_fetch = "--no-fetch" in rest[: rest.index("--") if "--" in rest else len(rest)]
        command = rest[rest.index("--") + 1:] if "--" in rest else [a for a in rest if a != "--no-fetch"]
        if not command:
            print("workbench: no command to run", file=sys.stderr)
            return 2
        if no_fetch:
            state = plan.get("state_file", "")
            manifest = json.loads(Path(state).read_text(encoding="utf-8")) if state else {}
            manifest = {k: (int(v[0]), int(v[1])) for k, v in manifest.items()}
        else:
            manifest = _fetch_step(plan)
        return _run_step(plan, command, manifest)
    except JobFetchError as exc:
        _report(plan, str(exc))
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
