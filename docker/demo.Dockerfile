# The pod test's workload image: the Outrigger image + python3-minimal + test/tools/pod/demo_app.py.
# One image serves as both the sidecar and the application, so a pod test builds a single
# layer on top of the image under test. From the repository root:
#   podman build --pull=never --network=host --build-arg OUTRIGGER_IMAGE=localhost/outrigger:0.1.0 \
#     -f docker/demo.Dockerfile -t localhost/outrigger-demo:dev .
ARG OUTRIGGER_IMAGE=localhost/outrigger:0.1.0

# The Outrigger image has no apt (see docker/Dockerfile): install python3-minimal on plain
# Debian and keep the files of exactly the packages that adds. Files that packages list under
# /lib, /bin or /sbin move to /usr: the image's /lib is a symlink (merged /usr) that a real
# /lib directory in the copied tree would replace.
FROM debian:12-slim AS python
RUN dpkg-query -W -f '${Package}\n' | sort >/tmp/before \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-minimal >/dev/null \
    && dpkg-query -W -f '${Package}\n' | sort >/tmp/after \
    && for p in $(comm -13 /tmp/before /tmp/after); do \
         dpkg -L "$p" | while read -r f; do [ -d "$f" ] || echo "$f"; done; \
       done >/tmp/files \
    && mkdir /extra && tar -cf - --no-recursion -T /tmp/files 2>/dev/null | tar -xf - -C /extra \
    && for d in bin sbin lib lib64; do \
         if [ -d /extra/$d ]; then mkdir -p /extra/usr/$d && cp -a /extra/$d/. /extra/usr/$d/ && rm -rf /extra/$d; fi; \
       done \
    && rm -rf /extra/usr/share/doc/*/changelog* /extra/usr/share/man \
    && apt-get clean && rm -rf /var/lib/apt/lists/*   # the stage is build cache: keep it small

FROM ${OUTRIGGER_IMAGE}
COPY --from=python /extra/ /
COPY --chmod=0755 test/tools/pod/demo_app.py /usr/local/bin/demo_app.py
# The application must not run as the proxy's UID 2102: iptables lets that UID's traffic
# out without the sidecar.
USER 1000:1000
ENTRYPOINT ["/usr/bin/python3", "/usr/local/bin/demo_app.py"]
CMD ["server"]
