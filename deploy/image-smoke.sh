#!/usr/bin/env bash
# Build the Dockerfile for real and serve from it the way deploy/k8s runs it: read-only root, all
# capabilities dropped, a tmpfs at /tmp, uid 10001, a CPU quota. Not part of CI (minutes, root,
# a Docker engine); run it as `make image-smoke`.
#
# Where Docker Hub and download.pytorch.org cannot be reached, nothing here needs them:
#   - the base image is Debian bookworm (Python 3.11, as python:3.11-slim) made with debootstrap
#     from the Debian mirror apt uses, with a venv so `python` and `pip` are on PATH; its tarball is
#     cached in .cache/image-smoke/ (delete it to rebuild);
#   - the wheels come from this machine's pip (PyPI or its local wheel directories), served to the
#     build as a PEP 503 index on 127.0.0.1 (TORCH_INDEX_URL / PIP_INDEX_URL build arguments).
# dockerd is started if none answers, and stopped at the end if this script started it. The
# container, the images and the index server are removed at the end, pass or fail; with
# KEEP_IMAGES=1 a passing run keeps the image as namegen:latest (and its base), so that
# `docker compose up` serves it with no registry at all: the offline route of the README.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=$ROOT/.cache/image-smoke
BASE_TAR=$CACHE/bookworm-python3.tar
BASE_IMAGE=namegen-smoke-base:bookworm
IMAGE=namegen:smoke
CONTAINER=namegen-smoke
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d /tmp/namegen-image-smoke.XXXXXX)
DOCKERD_PID="" INDEX_PID=""
KEEP_IMAGES=${KEEP_IMAGES:-0}

say() { printf '== %s\n' "$*"; }

cleanup() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] || docker info >/dev/null 2>&1; then
    docker rm -f "$CONTAINER" >/dev/null 2>&1
    if [ "$KEEP_IMAGES" = 1 ] && [ "$rc" -eq 0 ]; then
      docker tag "$IMAGE" namegen:latest && docker rmi "$IMAGE" >/dev/null 2>&1
      say "kept namegen:latest (and $BASE_IMAGE): docker compose up serves it without a registry"
    else
      docker rmi -f "$IMAGE" "$BASE_IMAGE" >/dev/null 2>&1
    fi
    docker image prune -f >/dev/null 2>&1
  fi
  [ -n "$INDEX_PID" ] && kill "$INDEX_PID" 2>/dev/null && wait "$INDEX_PID" 2>/dev/null
  if [ -n "$DOCKERD_PID" ]; then
    say "stopping the dockerd this script started (pid $DOCKERD_PID)"
    kill "$DOCKERD_PID" && wait "$DOCKERD_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  if [ "$rc" -eq 0 ]; then say "image smoke: PASS"; else say "image smoke: FAIL (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in docker dockerd debootstrap curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install -y docker.io debootstrap curl"; exit 2; }
done
export DOCKER_BUILDKIT=0  # the classic builder: Debian's engine has no buildx plugin

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $WORK/dockerd.log)"
  dockerd >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; exit 1; }
fi

# 1. The base image: Debian bookworm's python3 (3.11) in a venv at /opt/python, first on PATH.
if [ ! -s "$BASE_TAR" ]; then
  say "debootstrap bookworm (minbase + python3, python3-venv, passwd) from $MIRROR"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include=python3,python3-venv,passwd bookworm "$WORK/rootfs" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  chroot "$WORK/rootfs" python3 -m venv /opt/python
  rm -rf "$WORK/rootfs"/var/cache/apt/archives/*.deb "$WORK/rootfs"/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -cf "$BASE_TAR" .
  rm -rf "$WORK/rootfs"
fi
docker import \
  -c 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' -c 'CMD ["python"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
say "base image $BASE_IMAGE: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec) ($(docker run --rm "$BASE_IMAGE" python --version))"

# 2. A local package index with exactly what the Dockerfile's two pip installs need.
say "collecting wheels for torch==2.13.0 and the project's dependencies"
"$PYTHON" - >"$WORK/requirements.txt" <<'EOF'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join([*deps, "setuptools>=68"]))
EOF
"$PYTHON" -m pip download --quiet --only-binary=:all: --dest "$WORK/wheels" -r "$WORK/requirements.txt" \
  >"$WORK/pip.log" 2>&1 || { tail -20 "$WORK/pip.log"; exit 1; }
"$PYTHON" - "$WORK/wheels" "$WORK/index/simple" <<'EOF'
import re, shutil, sys
from pathlib import Path
wheels, simple = Path(sys.argv[1]), Path(sys.argv[2])
for wheel in wheels.glob("*.whl"):
    project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    (simple / project).mkdir(parents=True, exist_ok=True)
    shutil.move(wheel, simple / project / wheel.name)
print(f"   {sum(1 for _ in simple.iterdir())} projects in the local index")
EOF
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$PORT" >"$WORK/index.log" 2>&1 &
INDEX_PID=$!
INDEX=http://127.0.0.1:$PORT/simple
for _ in $(seq 20); do curl -fs "$INDEX/" >/dev/null && break; sleep 0.25; done

# 3. The project's own Dockerfile, unchanged, against that base and index.
say "docker build (base $BASE_IMAGE, index $INDEX)"
start=$(date +%s)
docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
  --build-arg "TORCH_INDEX_URL=$INDEX" --build-arg "PIP_INDEX_URL=$INDEX" \
  -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
say "built $IMAGE in $(($(date +%s) - start)) s"

# 4. Run it as deploy/k8s/deployment.yaml does, on a non-default port so the HEALTHCHECK must follow it.
MEMORY=$("$PYTHON" -c '
import yaml
pod = yaml.safe_load(open("deploy/k8s/deployment.yaml"))["spec"]["template"]["spec"]
print(pod["containers"][0]["resources"]["limits"]["memory"].replace("Mi", "m"))')
HOST_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "docker run --read-only --cap-drop ALL --tmpfs /tmp --user 10001 --cpus 1 --memory $MEMORY, NAMEGEN_PORT=8080"
docker run -d --name "$CONTAINER" --read-only --cap-drop ALL --tmpfs /tmp --user 10001 \
  --security-opt no-new-privileges --cpus 1 --memory "$MEMORY" \
  -e NAMEGEN_PORT=8080 -e OMP_NUM_THREADS=1 -e MKL_NUM_THREADS=1 -e OPENBLAS_NUM_THREADS=1 \
  -p "127.0.0.1:$HOST_PORT:8080" "$IMAGE" >/dev/null
URL=http://127.0.0.1:$HOST_PORT
for _ in $(seq 120); do curl -fs "$URL/health" >/dev/null && break; sleep 0.5; done
echo "   GET /health -> $(curl -fsS "$URL/health")"

BODY='{"n":5,"seed":42}'
got=$(curl -fsS -X POST "$URL/sample" -H 'Content-Type: application/json' -d "$BODY")
want=$("$PYTHON" -W ignore - "$BODY" <<'EOF'
import sys
from fastapi.testclient import TestClient
from app.main import create_app
with TestClient(create_app()) as client:
    sys.stdout.write(client.post("/sample", content=sys.argv[1], headers={"Content-Type": "application/json"}).text)
EOF
)
# Names are not printed: some are real names from the training list.
summary=$("$PYTHON" - "$got" <<'EOF'
import hashlib, json, sys
body = sys.argv[1].encode()
answer = json.loads(body)
digest = hashlib.sha256(body).hexdigest()[:16]
print(f"{len(answer['names'])} names, complete={answer['complete']}, {len(body)} bytes, sha256 {digest}...")
EOF
)
echo "   POST /sample $BODY -> 200, $summary"
[ "$got" = "$want" ] || { echo "   differs from the same request served by this checkout on the host"; exit 1; }
echo "   identical bytes to the same request served in-process on the host"

threads=$(docker exec "$CONTAINER" python -c 'from app.serving.workers import usable_cores; print(usable_cores())')
echo "   worker threads in the container (--cpus 1 on a $(nproc)-CPU host): $threads"
[ "$threads" = 1 ]

say "waiting for Docker's HEALTHCHECK (interval 10 s) on port 8080"
for _ in $(seq 40); do
  health=$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")
  [ "$health" = starting ] || break
  sleep 1
done
echo "   health status: $health"
[ "$health" = healthy ]
echo "   memory in use: $(docker stats --no-stream --format '{{.MemUsage}}' "$CONTAINER")"
if command -v wrk >/dev/null; then  # the heaviest load the memory limit was sized for
  "$PYTHON" - >"$WORK/loss.lua" <<'EOF'
import json, random
r = random.Random(0)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 20))) for _ in range(1000)]
print('wrk.method = "POST"')
print('wrk.headers["Content-Type"] = "application/json"')
print("wrk.body = [[" + json.dumps({"words": words}) + "]]")
EOF
  wrk -t1 -c64 -d5s -s "$WORK/loss.lua" "$URL/loss" | grep -E 'Requests/sec|Non-2xx' | sed 's/^ */   wrk, 1000-word \/loss at c=64: /'
  echo "   after it: memory $(docker stats --no-stream --format '{{.MemUsage}}' "$CONTAINER")," \
    "OOM-killed $(docker inspect -f '{{.State.OOMKilled}}' "$CONTAINER"), running $(docker inspect -f '{{.State.Running}}' "$CONTAINER")"
  [ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" = true ]
fi

docker logs "$CONTAINER" 2>&1 | sed 's/^/   log: /' | tail -8
stop_start=$(date +%s%N)
docker stop -t 30 "$CONTAINER" >/dev/null
echo "   docker stop (SIGTERM, 30 s grace) took $(( ($(date +%s%N) - stop_start) / 1000000 )) ms," \
  "exit code $(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"

say "image $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
docker history --format '   {{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110 | head -20
