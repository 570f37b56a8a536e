"""Python modules for the xDS API in api/, generated at run time.

The repository keeps only the .proto files (api/); generated code is never
committed. This module runs protoc + grpc_python_plugin once per distinct set of
inputs into a cache directory and puts it on sys.path. Importing it also imports
every generated *_pb2 module, so that all message descriptors are in the default
pool: google.protobuf.json_format needs that to resolve the "@type" of an Any,
including the Anys nested inside resources (an HttpConnectionManager inside a
Listener, the Router filter inside that).

Runs only under Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf).
"""

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
API = os.path.join(REPO, "api")
PROTOC = os.environ.get("PROTOC", "protoc")
GRPC_PLUGIN = os.environ.get("GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
# google/protobuf/*.proto come from libprotobuf-dev, as in the C++ build.
SYSTEM_INCLUDE = "/usr/include"

TYPE_PREFIX = "type.googleapis.com/"
LISTENER = TYPE_PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = TYPE_PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER = TYPE_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = TYPE_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = TYPE_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
SHORT_NAMES = {LISTENER: "LDS", ROUTE: "RDS", CLUSTER: "CDS", ENDPOINT: "EDS", SECRET: "SDS"}


class Unavailable(Exception):
    """protoc, the plugin or the api/ tree is missing: callers skip (exit 77)."""


def _proto_files():
    with open(os.path.join(API, "FILES")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _cache_key(files):
    # Keyed on the inputs and the generator's version, so a refreshed api/ or an
    # upgraded protoc never reuses stale modules.
    h = hashlib.sha256()
    version = subprocess.run([PROTOC, "--version"], capture_output=True, text=True, check=True)
    h.update(version.stdout.encode())
    for name in files:
        h.update(name.encode() + b"\0")
        with open(os.path.join(API, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def generate(cache_root=None):
    """Returns a directory holding the generated modules, generating it if needed."""
    if shutil.which(PROTOC) is None or not os.access(GRPC_PLUGIN, os.X_OK):
        raise Unavailable(f"need {PROTOC} and {GRPC_PLUGIN} (Debian: protobuf-compiler, protobuf-compiler-grpc)")
    if not os.path.isfile(os.path.join(API, "FILES")):
        raise Unavailable(f"{API}/FILES not found")
    files = _proto_files()
    cache_root = cache_root or os.environ.get("OUTRIGGER_XDS_PY_CACHE") or os.path.join(
        os.environ.get("HOME") or tempfile.gettempdir(), ".cache", "outrigger-xds-py")
    out = os.path.join(cache_root, _cache_key(files))
    if os.path.isfile(os.path.join(out, ".complete")):
        return out
    os.makedirs(cache_root, exist_ok=True)
    # Generate into a private directory and rename it into place: tests running in
    # parallel may race here, and a reader must never see a half-written tree.
    tmp = tempfile.mkdtemp(prefix="gen-", dir=cache_root)
    try:
        subprocess.run(
            [PROTOC, "-I", API, "-I", SYSTEM_INCLUDE, f"--python_out={tmp}", f"--grpc_out={tmp}",
             f"--plugin=protoc-gen-grpc={GRPC_PLUGIN}", *files],
            check=True, capture_output=True, text=True)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.rename(tmp, out)
        except OSError:
            # Someone else finished first; theirs is identical.
            shutil.rmtree(tmp, ignore_errors=True)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"protoc failed: {e.stderr}") from e
    return out


def load():
    """Generates (if needed), imports every module, returns the ADS modules."""
    out = generate()
    if out not in sys.path:
        sys.path.insert(0, out)
    for name in _proto_files():
        # Skip nothing: descriptors only reach the default pool when imported.
        importlib.import_module(name[:-len(".proto")].replace("/", ".") + "_pb2")
    discovery = importlib.import_module("envoy.service.discovery.v3.discovery_pb2")
    ads_grpc = importlib.import_module("envoy.service.discovery.v3.ads_pb2_grpc")
    return discovery, ads_grpc


def message_class(type_url):
    """The generated class for a type URL, or None when the pool does not know it."""
    from google.protobuf import symbol_database
    try:
        return symbol_database.Default().GetSymbol(type_url.split("/")[-1])
    except KeyError:
        return None
