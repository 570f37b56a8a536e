#!/bin/sh
# Refreshes api/ from the npm package @grpc/grpc-js-xds (its deps/: envoy-api,
# xds, googleapis, protoc-gen-validate): the .proto files that the roots below
# import, directly or not, and nothing else. google/protobuf/* come from
# Debian's libprotobuf-dev. Needs npm, protoc and /usr/bin/python3 with
# python3-protobuf. usage: api/vendor.sh [VERSION]
set -eu
version=${1:-1.14.1}
cd "$(dirname "$0")"
roots="envoy/service/discovery/v3/ads.proto
envoy/config/listener/v3/listener.proto
envoy/config/route/v3/route.proto
envoy/config/cluster/v3/cluster.proto
envoy/config/endpoint/v3/endpoint.proto
envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
envoy/extensions/filters/http/router/v3/router.proto
envoy/extensions/transport_sockets/tls/v3/tls.proto
envoy/extensions/transport_sockets/tls/v3/secret.proto
envoy/extensions/upstreams/http/v3/http_protocol_options.proto"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@grpc/grpc-js-xds@$version" >/dev/null && tar xzf grpc-grpc-js-xds-*.tgz)
deps="$work/package/deps"
# The package's validate.proto is older than its envoy-api: envoy-api uses
# StringRules.ignore_empty, which protoc (unlike protobuf.js) insists on.
/usr/bin/python3 - "$deps/protoc-gen-validate/validate/validate.proto" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
if "ignore_empty" not in s:
    i = s.index("message StringRules")
    j = s.index("\n}", i)
    s = s[:j] + """

    // Added by Outrigger's api/vendor.sh (not in the copy @grpc/grpc-js-xds
    // carries; protoc-gen-validate has it since 0.6): envoy-api uses it.
    optional bool ignore_empty = 26;""" + s[j:]
    open(p, "w").write(s)
PY
includes="-I $deps/envoy-api -I $deps/xds -I $deps/googleapis -I $deps/protoc-gen-validate"
# shellcheck disable=SC2086
protoc $includes --include_imports --descriptor_set_out="$work/set.pb" $roots
files=$(/usr/bin/python3 -c '
import sys
from google.protobuf import descriptor_pb2
s = descriptor_pb2.FileDescriptorSet()
s.ParseFromString(open(sys.argv[1], "rb").read())
print("\n".join(sorted(f.name for f in s.file if not f.name.startswith("google/protobuf/"))))
' "$work/set.pb")
rm -rf envoy xds udpa validate google
for f in $files; do
  for root in envoy-api xds googleapis protoc-gen-validate; do
    if [ -f "$deps/$root/$f" ]; then
      mkdir -p "$(dirname "$f")"
      cp "$deps/$root/$f" "$f"
      break
    fi
  done
done
echo "$files" > FILES
echo "api/: $(echo "$files" | wc -l) files from @grpc/grpc-js-xds@$version"
