#!/usr/bin/env bash
# Start a Docker daemon if none answers and build the offline base image workbench-python:bookworm.
# Idempotent; exits non-zero (with the reason) when Docker cannot run on this machine.
set -euo pipefail
IMAGE="${WORKBENCH_TEST_IMAGE:-workbench-python:bookworm}"

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "no dockerd installed"; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "not root: cannot start dockerd"; exit 1; }
  mkdir -p /var/log
  # overlay2 where the kernel allows it (a container starts in about a second); vfs otherwise,
  # which copies the whole image for every container (tens of seconds each on a busy disk).
  started=""
  for driver in overlay2 vfs; do
    echo "== starting dockerd (storage driver $driver)"
    nohup setsid dockerd --storage-driver="$driver" --iptables=false --bridge=none \
      >/var/log/workbench-dockerd.log 2>&1 &
    pid=$!
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && { started=$driver; break; }
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    [ -n "$started" ] && break
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -n "$started" ] || { echo "dockerd did not start: see /var/log/workbench-dockerd.log"; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  command -v mmdebstrap >/dev/null || { echo "no mmdebstrap: cannot build $IMAGE"; exit 1; }
  echo "== building $IMAGE offline (mmdebstrap | docker import)"
  tar_file="$(mktemp -d)/rootfs.tar"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$tar_file" >/dev/null
  docker import "$tar_file" "$IMAGE" >/dev/null
  rm -rf "$(dirname "$tar_file")"
fi
echo "== docker ready, image $IMAGE"
