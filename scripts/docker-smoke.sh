#!/usr/bin/env bash
# Builds the Docker image with podman and proves it: `gimsfm --help`, `gimsfm matchers`, the named presets of a
# non-editable install, and the demo `reconstruct` into a host folder (all 10 images registered, a non-empty
# points.ply, summary.json owned by and readable for the mapped host user). Not part of .ci/run: it takes
# minutes and gigabytes. Runs as root (re-runs itself with sudo); installs podman from apt if missing.
#   bash scripts/docker-smoke.sh            CPU image (PyTorch's CPU wheel)
#   bash scripts/docker-smoke.sh --cuda     GPU image (the Dockerfile's defaults: the CUDA build), run on CPU
# Without a reachable registry (these machines) the base is a local stand-in for python:3.11-slim-bookworm
# made with mmdebstrap (../shared/notes/CONTAINERS.md). Everything it starts lives in one scratch folder
# (SMOKE_WORKDIR, default under /var/tmp) with its own podman store, removed on exit, also on failure.
# The last line is the verdict: PASS/FAIL, build time, image size, demo result.
set -uo pipefail

VARIANT=cpu
for arg in "$@"; do
  case "$arg" in
    --cuda) VARIANT=cuda ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "docker-smoke: unknown option $arg (only --cuda)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi
cd "$(dirname "$0")/.."
REPO=$PWD

exec 3>&1 4>&2  # the trap reports here, also when it interrupts a command whose output goes to a log
STEP=setup; BUILD_S=-; SIZE=-; DEMO="not run"; CHILD=""; WORK=""
log() { echo "[docker-smoke $(date -u +%H:%M:%S)] $*"; }
fail() { log "FAILED at $STEP: $*"; exit 1; }

# Run a long command in the background, so that a signal reaches the trap at once, not after the command;
# in its own process group, so that the trap can stop all of it (mmdebstrap's apt, podman's helpers).
bg() { setsid "$@" & CHILD=$!; wait "$CHILD"; local rc=$?; CHILD=""; return "$rc"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  exec 1>&3 2>&4
  if [ -n "$CHILD" ]; then
    kill -TERM -- "-$CHILD" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$CHILD" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    log "cleanup: containers, then the podman store (all images) in $WORK"
    podman rm -a -f >/dev/null 2>&1
    # overlay mounts left by an interrupted build would keep the store busy
    findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf --one-file-system "$WORK"  # the private store: removing it removes every image and layer (faster than podman rmi)
    left=$(ps -eo pid=,args= | grep -F "$WORK" | grep -v grep || true)
    [ -z "$left" ] || { log "cleanup: processes still use $WORK:"; echo "$left"; rc=1; }
  fi
  if [ "$rc" -eq 0 ]; then
    echo "docker-smoke: PASS $VARIANT image: build ${BUILD_S} s, size ${SIZE}; demo ${DEMO}"
  else
    echo "docker-smoke: FAIL $VARIANT image at step '$STEP' (build ${BUILD_S} s, size ${SIZE}; demo ${DEMO})"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- tools
STEP=tools
need=""
for p in podman runc fuse-overlayfs containernetworking-plugins uidmap mmdebstrap; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  log "apt install:$need"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || fail "apt-get install$need"
fi

# -- a private podman: its own store and config in the scratch folder (the settings CONTAINERS.md measured)
STEP=podman-config
WORK=$(mktemp -d "${SMOKE_WORKDIR:-/var/tmp}/gimsfm-smoke.XXXXXX") || fail "mktemp"
want_gb=$([ "$VARIANT" = cuda ] && echo 20 || echo 10)
free_gb=$(df -Pk "$WORK" | awk 'NR == 2 {print int($4 / 1048576)}')
[ "$free_gb" -ge "$want_gb" ] || fail "$free_gb GB free under $WORK, the $VARIANT build needs about $want_gb GB"
mkdir -p "$WORK/storage" "$WORK/run" "$WORK/tmp" "$WORK/net" "$WORK/out"
chmod 711 "$WORK"  # the mapped host user must reach out/ to read its files
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
cat > "$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$(cat /proc/sys/kernel/pid_max):$(cat /proc/sys/kernel/pid_max)"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$WORK/tmp"
[network]
network_config_dir = "$WORK/net"
EOF
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf" TMPDIR="$WORK/tmp"

# -- base image: python:3.11-slim-bookworm from the registry, else a local stand-in
STEP=base
BASE=python:3.11-slim-bookworm
t0=$(date +%s)
if curl -s -m 5 -o /dev/null https://registry-1.docker.io/v2/; then
  log "registry reachable: FROM $BASE"
else
  BASE=localhost/py311-bookworm:smoke
  log "no registry: building the stand-in $BASE with mmdebstrap (it trusts this machine's CA; never push it)"
  bg mmdebstrap --mode=root --variant=minbase --format=tar --quiet \
    --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    bookworm "$WORK/base.tar" /etc/apt/sources.list.d/debian.sources || fail "mmdebstrap"
  bg podman import --quiet "$WORK/base.tar" "$BASE" >/dev/null || fail "podman import"
  rm -f "$WORK/base.tar"
  log "base ready in $(( $(date +%s) - t0 )) s"
fi

# -- build
STEP=build
TORCH_VERSION=$(sed -n 's/.*TORCH_VERSION:-\([0-9][0-9.]*\).*/\1/p' install.sh | head -1)
[ -n "$TORCH_VERSION" ] || fail "no torch pin found in install.sh"
args=(--network host --build-arg "BASE_IMAGE=$BASE")
if [ "$VARIANT" = cpu ]; then
  cpu_index=https://download.pytorch.org/whl/cpu
  if curl -s -f -m 5 -o /dev/null "$cpu_index/torch/"; then
    args+=(--build-arg "TORCH_INDEX_URL=$cpu_index")
  else
    # no CPU index: a local CPU wheel from pip's find-links (these machines have one), mounted into the build
    wheel=""
    for d in ${TORCH_WHEEL_DIR:-} $(python3 -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p"); do
      wheel=$(ls "$d"/torch-"$TORCH_VERSION"+cpu-*.whl 2>/dev/null | head -1) && [ -n "$wheel" ] && break
    done
    [ -n "$wheel" ] || fail "$cpu_index unreachable and no torch-$TORCH_VERSION+cpu wheel (set TORCH_WHEEL_DIR)"
    log "CPU index unreachable: torch from $wheel"
    args+=(-v "$(dirname "$wheel"):/wheels:ro" --build-arg "TORCH_SPEC=torch==$TORCH_VERSION+cpu"
           --build-arg PIP_FIND_LINKS=/wheels)
  fi
fi
IMAGE=localhost/gimsfm-smoke:$VARIANT
log "podman build ${args[*]} -t $IMAGE ."
t0=$(date +%s)
bg podman build "${args[@]}" -t "$IMAGE" . > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "podman build"; }
BUILD_S=$(( $(date +%s) - t0 ))
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')
log "built $IMAGE in $BUILD_S s, $SIZE"

# -- inside the container
STEP=help
podman run --rm "$IMAGE" --help > "$WORK/help.txt" 2>&1 && grep -q reconstruct "$WORK/help.txt" \
  || { cat "$WORK/help.txt"; fail "gimsfm --help"; }
STEP=matchers
podman run --rm "$IMAGE" matchers > "$WORK/matchers.txt" 2>&1 && grep -q sift-lightglue-gim "$WORK/matchers.txt" \
  || { cat "$WORK/matchers.txt"; fail "gimsfm matchers"; }
cat "$WORK/matchers.txt"
STEP=install
podman run --rm --entrypoint python "$IMAGE" -c "
import gimsfm, torch
from gimsfm.sfm.reconstruct import ReconstructConfig
from gimsfm.synth.suites import load_preset
assert 'site-packages' in gimsfm.__file__, gimsfm.__file__  # the wheel, not a source tree
assert ReconstructConfig.from_preset('reconstruct_sift').matcher == 'sift-nn'
assert load_preset('base-indoor')['kind']
assert bool(torch.version.cuda) == ('$VARIANT' == 'cuda'), torch.__version__
print('package', gimsfm.__file__, '| torch', torch.__version__, '| cuda available:', torch.cuda.is_available())
" || fail "non-editable install: presets, torch build"

STEP=demo
# a host user owns the output: the invoking one (sudo), else the checkout's owner, else an id unknown to the image
uid=${SUDO_UID:-$(stat -c %u "$REPO")}; gid=${SUDO_GID:-$(stat -c %g "$REPO")}
[ "$uid" -eq 0 ] && { uid=4242; gid=4242; }
chown "$uid:$gid" "$WORK/out"
t0=$(date +%s)
bg podman run --rm --user "$uid:$gid" -v "$WORK/out:/data/out" "$IMAGE" \
  reconstruct /opt/gimsfm/scenes/sacre_coeur/images --out /data/out || fail "gimsfm reconstruct in the container"
demo_s=$(( $(date +%s) - t0 ))
STEP=check
s=$WORK/out/summary.json
[ "$(stat -c %u:%g "$s")" = "$uid:$gid" ] || fail "summary.json owned by $(stat -c %u:%g "$s"), not $uid:$gid"
[ -s "$WORK/out/points.ply" ] || fail "points.ply missing or empty"
[ "$(stat -c %u "$WORK/out/points.ply")" = "$uid" ] || fail "points.ply not owned by $uid"
setpriv --reuid "$uid" --regid "$gid" --clear-groups cat "$s" > "$WORK/summary.read" \
  || fail "summary.json not readable for uid $uid"
DEMO=$(python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
ok = s['status'] == 'ok' and s['num_registered'] == s['num_images'] == 10 and s['num_points_ply'] > 0
print(f\"{s['num_registered']}/{s['num_images']} images, {s['num_points3D']} points, \"
      f\"{s['mean_reprojection_error']:.3f} px in $demo_s s\")
sys.exit(0 if ok else 1)
" "$WORK/summary.read") || fail "summary.json: $DEMO"
log "summary.json: owner $uid:$gid, mode $(stat -c %a "$s"), $DEMO"
STEP=done
