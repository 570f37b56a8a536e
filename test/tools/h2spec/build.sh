#!/bin/sh
# Builds h2spec offline from Debian 12's Go packages (docker/install-deps.sh
# test installs them: golang-go golang-golang-x-net-dev
# golang-github-spf13-cobra-dev golang-github-fatih-color-dev).
# usage: test/tools/h2spec/build.sh OUT_BINARY
set -eu
out=$(realpath -m "${1:?usage: build.sh OUT_BINARY}")
here=$(cd "$(dirname "$0")" && pwd)
gp=$(mktemp -d)
trap 'rm -rf "$gp"' EXIT
mkdir -p "$gp/src/github.com/summerwind"
tar -xzf "$here/h2spec-src.tar.gz" -C "$gp/src/github.com/summerwind"
cd "$gp/src/github.com/summerwind/h2spec"
GO111MODULE=off GOPATH="$gp:/usr/share/gocode" GOFLAGS= GOCACHE="$gp/cache" go build -o "$out" ./cmd/h2spec
