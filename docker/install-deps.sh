#!/bin/sh
# Installs Outrigger's build and test dependencies from Debian 12's archive.
# The one list of packages: the Makefile, .ci/run and the Dockerfile all call this.
# usage: docker/install-deps.sh [build|test|bench|fuzz]   (default: test)
set -eu
what=${1:-test}
build="g++ cmake make pkg-config ccache \
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-program-options1.81-dev \
  libnghttp2-dev libssl-dev libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev libc-ares-dev \
  libprotobuf-dev protobuf-compiler"
# h2spec's Go build, nghttp and h2load for the HTTP/2 tests, gRPC's Python runtime for the gRPC tests,
# WebSocket peers (websockets, h2), ip/iptables for the original-destination tests in a netns, and dnslib
# for the DNS server the DNS-cluster tests run; nodejs and npm for the Kubernetes manifests' schema checks
# (test/tools/kube: kubernetes-models from npm, pinned by its lock, installed into a cache by the tests);
# PyYAML and openssl for the pod test (test/pod; docker/containers.sh installs Podman itself);
# protobuf-compiler-grpc (grpc_python_plugin) and python3-protobuf for the xDS control plane the
# tests run (test/tools/xds), whose client cross-check (@grpc/grpc-js-xds) runs on node.
test="$build libgtest-dev libgmock-dev curl prometheus nghttp2-client python3-yaml openssl \
  golang-go golang-golang-x-net-dev golang-github-spf13-cobra-dev golang-github-fatih-color-dev python3-grpcio \
  python3-websockets python3-h2 iproute2 iptables python3-dnslib nodejs npm protobuf-compiler-grpc python3-protobuf"
# ip, iptables and nft for the interception benchmark's network namespaces; prometheus-client's
# text parser for the soak's and the mesh chaos's reading of /metrics.
bench="$build wrk haproxy nginx-light procps curl python3-h11 nghttp2-client python3-h2 python3-grpcio iperf3 \
  iproute2 iptables nftables python3-prometheus-client"
# clang 14 and its libFuzzer for the fuzz targets (test/fuzz), built apart from the GCC build.
fuzz="$build clang-14 libfuzzer-14-dev"
case "$what" in
  build) pkgs=$build ;;
  test) pkgs=$test ;;
  bench) pkgs=$bench ;;
  fuzz) pkgs=$fuzz ;;
  *) echo "usage: $0 [build|test|bench|fuzz]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  # A nodejs that ships its own npm (NodeSource's) conflicts with Debian's npm package: its npm will do.
  [ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Services (nginx, haproxy) must not start on install: the benchmark starts its own.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
