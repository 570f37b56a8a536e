#!/bin/sh
# The two quick-start commands (README.md) and the CI entry point.
#   docker/build.sh run [CONFIG]   install what is missing, build (release), run the proxy
#   docker/build.sh test           install what is missing, build with ASan+UBSan and run every test,
#                                  then the ThreadSanitizer job and each fuzz target for 30 s (what CI runs)
#   docker/build.sh build          install what is missing, build (release) only
#   docker/build.sh tsan [REGEX]   build with ThreadSanitizer (build/tsan), run its integration tests
#                                  (those matching REGEX)
#   docker/build.sh fuzz [SECONDS] install clang 14 and libFuzzer, build the fuzz targets (build/fuzz), run each
#                                  for SECONDS (default 300) on a copy of its corpus; non-zero on any crash
#   docker/build.sh containers     set up Podman and the base image (docker/containers.sh; root or sudo)
#   docker/build.sh image          build the release image localhost/outrigger:VERSION with Podman
set -eu
cd "$(dirname "$0")/.."
cmd=${1:-run}
jobs=$(nproc 2>/dev/null || echo 2)
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# One cache for every checkout of the project: paths below the checkout are hashed
# relative to it, and the build directory's name is not hashed (ccache does both for
# -g builds by default), so a second clone or worktree builds from the first one's cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
export CCACHE_NOHASHDIR=1

release() {
  ./docker/install-deps.sh build
  cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DOUTRIGGER_TESTS=OFF >/dev/null
  cmake --build build/release -j "$jobs" --target outrigger
}

asan_tests() (
  ./docker/install-deps.sh test &&
  cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DOUTRIGGER_SANITIZE=ON >/dev/null &&
  cmake --build build/test -j "$jobs" &&
  cd build/test &&
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -j 4 --output-on-failure --no-tests=error --timeout 180
)

# The integration tests under ThreadSanitizer (those matching $1): the TSan build
# holds only the tests where threads meet (test/CMakeLists.txt, TSAN_INTEGRATION_TESTS):
# reload, drain, certificate rotation and upgrades racing with traffic, the workers'
# shared gauges, the main thread's DNS, health checks and span reporting.
tsan_tests() (
  ./docker/install-deps.sh test &&
  cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DOUTRIGGER_TSAN=ON >/dev/null &&
  cmake --build build/tsan -j "$jobs" &&
  cd build/tsan &&
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest -j 3 --output-on-failure --no-tests=error -R "$1"
)

# The fuzz targets (test/fuzz), clang 14's libFuzzer with ASan+UBSan, $1 seconds each.
fuzz_targets() (
  ./docker/install-deps.sh fuzz &&
  # OUTRIGGER_FUZZ_SECONDS: each target's CTest test fuzzes that long (its timeout follows).
  CXX=clang++-14 cmake -S . -B build/fuzz -DOUTRIGGER_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DOUTRIGGER_FUZZ_SECONDS="$1" >/dev/null &&
  cmake --build build/fuzz -j "$jobs" &&
  cd build/fuzz &&
  # Each target is one process on one core: as many at once as there are cores;
  # every one runs even when one fails.
  ctest -j "$jobs" --output-on-failure --no-tests=error
)

# The soak's 3-minute variant (test/bench/soak.py --ci) on the ASan+UBSan build
# asan_tests made: mixed HTTP/1.1, HTTP/2 and gRPC through two proxies meshed with
# mTLS, retries and tracing on; no error the upstreams did not cause, descriptors
# and memory flat after the warm-up, a clean exit on SIGTERM (LeakSanitizer finds
# nothing). ASan's quarantine is off, so that freed memory is reused and RSS
# follows the heap. The 30-minute run on a release build is a benchmark.
soak_ci() (
  ./docker/install-deps.sh bench &&
  ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
    UBSAN_OPTIONS=print_stacktrace=1 \
    /usr/bin/python3 test/bench/soak.py --ci --outrigger build/test/outrigger
)

case "$cmd" in
  run)
    release
    exec ./build/release/outrigger run -c "${2:-config/outrigger.yaml}"
    ;;
  build)
    release
    ;;
  test)
    # What CI runs (.ci/run; docs/operations.md, "What CI runs"): every test under
    # ASan+UBSan, the soak's 3-minute variant, the ThreadSanitizer job, each fuzz
    # target for 30 s.
    asan_tests && soak_ci && tsan_tests . && fuzz_targets 30
    ;;
  tsan)
    tsan_tests "${2:-.}"
    ;;
  fuzz)
    fuzz_targets "${2:-300}"
    ;;
  containers)
    exec ./docker/containers.sh     # uses sudo itself when not root
    ;;
  image)
    # --pull=never: FROM debian:12-slim is the local image docker/containers.sh makes;
    # --network=host: the build's apt-get reaches Debian's archive as the host does.
    # Tagged with the version, the image `outrigger inject` names by default.
    ./docker/containers.sh
    version=$(sed -n 's/^project(outrigger VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
    exec podman build --pull=never --network=host -f docker/Dockerfile -t "localhost/outrigger:$version" .
    ;;
  *)
    echo "usage: $0 run [CONFIG] | test | build | tsan [REGEX] | fuzz [SECONDS] | containers | image" >&2
    exit 2
    ;;
esac
