#!/bin/sh
# Pod.Mesh: Outrigger sidecars injected into two pods, meshed with mTLS, under Podman.
#   test/pod/pod_test.sh OUTRIGGER_BINARY
# Sets up the container engine (docker/containers.sh), builds the image under test from the
# Dockerfile's `prebuilt` stage with OUTRIGGER_BINARY (and the sanitizer runtimes when it is
# an ASan/UBSan build) and the demo application image on top, runs pod_test.py, and removes
# the images it built. Exit 0 pass, 1 fail, 77 skipped (no working container engine here).
set -eu
bin=${1:?usage: $0 OUTRIGGER_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
skip() { echo "pod_test: SKIPPED: $*" >&2; exit 77; }
fail() { echo "pod_test: FAILED: $*" >&2; exit 1; }

[ -x "$bin" ] || fail "$bin is not an executable"
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac
# Rootful Podman: bridge networks with static addresses, and iptables in the pods.
[ "$(id -u)" -eq 0 ] || skip "needs root (rootful Podman: a bridge network with static pod addresses)"
rc=0
"$root/docker/containers.sh" >&2 || rc=$?
[ "$rc" -eq 77 ] && skip "the container engine cannot start here (docker/containers.sh says why above)"
[ "$rc" -eq 0 ] || fail "docker/containers.sh failed (exit $rc)"
py=/usr/bin/python3
"$py" -c 'import yaml' 2>/dev/null || fail "$py has no yaml module (python3-yaml; docker/install-deps.sh test installs it)"
command -v openssl >/dev/null || fail "no openssl (docker/install-deps.sh test installs it)"

tag=pod-test-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
image=localhost/outrigger:$tag
demo=localhost/outrigger-demo:$tag
ctx=$(mktemp -d)
binlayer=""
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  podman rmi -f "$demo" "$image" >/dev/null 2>&1 || true
  # The build cache of every step after the binary's COPY holds the binary (~150 MB for an
  # ASan build): remove each image with that layer, keep the cache of the other steps.
  if [ -n "$binlayer" ]; then
    # shellcheck disable=SC2046  # image ids, one word each
    podman image inspect --format '{{.ID}} {{range .RootFS.Layers}}{{.}} {{end}}' $(podman images -aq) 2>/dev/null \
      | awk -v l="$binlayer" 'index($0, " " l " ") {print $1}' \
      | while read -r id; do podman rmi -f "$id" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$ctx"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The prebuilt stage takes the binary from a build context holding only it. Debug sections
# off (a Debug/ASan build is mostly DWARF); the symbol table stays for sanitizer reports.
if command -v objcopy >/dev/null 2>&1; then
  objcopy --strip-debug "$bin" "$ctx/outrigger"
else
  cp "$bin" "$ctx/outrigger"
fi
sanitizers=""
sanitized=""
if ldd "$bin" 2>/dev/null | grep -q 'libasan\|libubsan'; then sanitizers="libasan8 libubsan1"; sanitized=--sanitized; fi
cd "$root"
podman build -q --pull=never --network=host --target prebuilt --build-context prebuilt-binary="$ctx" \
  --build-arg SANITIZER_LIBS="$sanitizers" -f docker/Dockerfile -t "$image" . >/dev/null \
  || fail "podman build --target prebuilt failed"
binlayer=$(podman image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$image" | grep . | tail -n 1)
podman build -q --pull=never --network=host --build-arg OUTRIGGER_IMAGE="$image" \
  -f docker/demo.Dockerfile -t "$demo" . >/dev/null || fail "podman build of docker/demo.Dockerfile failed"
echo "pod_test: images $image ($(podman image inspect --format '{{.Size}}' "$image") bytes), $demo" >&2
rc=0
"$py" "$here/pod_test.py" --binary "$bin" --image "$image" --demo-image "$demo" $sanitized || rc=$?
exit "$rc"
