#!/bin/sh
# A container engine for Outrigger's image and pod test on a Debian 12 host:
# Podman + runc from Debian's archive, pods from Kubernetes YAML (`podman kube play`),
# and a local base image localhost/debian:12-slim built from Debian's archive, so
# that nothing needs a container registry.
#   docker/containers.sh      as root (or via sudo); idempotent, seconds once done
# Exit 0: the engine runs containers. Exit 77: it cannot here (stderr says why);
# the pod test passes 77 on as "skipped". Other codes: the setup itself failed.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "containers.sh: needs root or sudo" >&2; exit 77; }
  SUDO="sudo"
fi

cannot() {
  echo "containers.sh: the container engine cannot work here: $*" >&2
  exit 77
}

# podman and buildah (podman build), runc (see below), catatonit (the pause process
# of every pod that `podman kube play` makes), netavark + aardvark-dns (bridge
# networks with static IPs), mmdebstrap (the base image), uidmap, and iptables
# (netavark's NAT rules).
pkgs="podman buildah runc catatonit netavark aardvark-dns mmdebstrap uidmap iptables"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null 2>&1 || cannot "no apt-get to install:$missing (a Debian 12 host is expected)"
  echo "containers.sh: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086  # a list of package names
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Engine settings, in a drop-in of our own so that the distribution's file stays as is.
# - runtime = "runc": Debian's default, crun, refuses hosts with the hybrid cgroup
#   layout (cgroup v1 and v2 mounted together): "cgroups in hybrid mode not supported".
# - default_ulimits = []: Podman otherwise sets RLIMIT_NPROC/RLIMIT_NOFILE on every
#   container, which an unprivileged or nested host refuses ("operation not
#   permitted"); containers keep the limits of the process that starts them.
conf=/etc/containers/containers.conf.d/50-outrigger.conf
want='# Written by outrigger docker/containers.sh; see the comments there.
[containers]
default_ulimits = []

[engine]
runtime = "runc"'
if [ "$(cat "$conf" 2>/dev/null || true)" != "$want" ]; then
  $SUDO mkdir -p /etc/containers/containers.conf.d
  printf '%s\n' "$want" | $SUDO tee "$conf" >/dev/null
fi

$SUDO podman info >/dev/null 2>&1 || cannot "'podman info' fails: $($SUDO podman info 2>&1 | tail -n 3)"

# The base image the Dockerfiles start from. No registry is needed: a minimal Debian 12
# (bookworm) from Debian's archive, imported under the name `FROM debian:12-slim`
# resolves to with `podman build --pull=never`. Made as Debian's own slim image is:
# - the merged-usr hook lays out /usr itself; otherwise mmdebstrap installs the usrmerge
#   package, which drags ~50 MB of Perl into every image;
# - dpkg leaves out documentation, manual pages and translations (copyright files stay),
#   in the base and in every package a later `apt-get install` adds;
# - no apt lists or caches are kept.
# An imported tarball has no config, so PATH is set here (apt-get and dpkg need
# /usr/sbin and /sbin).
if ! $SUDO podman image exists localhost/debian:12-slim; then
  echo "containers.sh: building localhost/debian:12-slim with mmdebstrap" >&2
  hooks=""
  [ -d /usr/share/mmdebstrap/hooks/merged-usr ] && hooks="--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr"
  # shellcheck disable=SC2086,SC2016  # $hooks: zero or one word; $1 is the hook's own argument
  $SUDO mmdebstrap --quiet --variant=minbase $hooks \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/linda/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log' \
      bookworm - \
    | $SUDO podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - localhost/debian:12-slim >/dev/null
fi

# The proof that containers start (the runtime, cgroups and limits all agree).
$SUDO podman run --rm --network=none localhost/debian:12-slim true \
  || cannot "a container does not start (podman run localhost/debian:12-slim true failed)"
echo "containers ready: podman $($SUDO podman --version | awk '{print $3}'), base image localhost/debian:12-slim"
