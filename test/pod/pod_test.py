#!/usr/bin/python3
"""Pod.Mesh: two pods with injected Outrigger sidecars, meshed with mTLS, under Podman.

Run by pod_test.sh, which sets up the engine and builds the images:
  pod_test.py --binary OUTRIGGER --image SIDECAR_IMAGE --demo-image APP_IMAGE

What it does, on a network of its own (198.51.100.0/24, a documentation range):
  - a CA and two SPIFFE leaf certificates (openssl), one proxy config per pod, each
    validated by the image's own binary;
  - plain client and server Pods passed through `outrigger inject --classic`, adjusted
    only for Podman 4.3 (see podman_quirks), and started with `podman kube play`;
  - mesh: the client calls the server by its plain IP:8080 and gets 200s, through both
    sidecars (metrics on both admins, one trace with spans of both proxies at a Zipkin
    collector this test runs on the gateway, the server proxy's access log shows the
    client's SPIFFE identity);
  - exclusion: calls to the server's excluded port 8081 reach the application and move
    no proxy counter on either side (and a call to 8080 does: the check can fail);
  - shutdown: under steady load, stopping the server pod as the kubelet does (SIGTERM to its
    containers, the network once they have exited) loses no request
    that the server proxy accepted.

"Accepted" means: the server proxy read the request, i.e. its access log has a line with
the request's x-request-id (it logs every exchange it reads, refused ones included). A
request the server proxy never read was refused before it was accepted: the client may see
503 (`connect_failure` / `no_healthy_upstream`: its own proxy could not connect to the
server pod any more) or a refused connection. Lost: an accepted request whose answer to the
client was not 200, or any other client outcome (502, 504, reset, end of file, timeout).

Exit 0 on success, 1 on a failed check (with what failed on stderr).
"""
import argparse
import http.server
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

SUBNET, GATEWAY = '198.51.100.0/24', '198.51.100.1'
SERVER_IP, CLIENT_IP = '198.51.100.10', '198.51.100.20'
APP_PORT, EXCLUDED_PORT, ADMIN_PORT, ZIPKIN_PORT = 8080, 8081, 9901, 9411
TRUST = 'spiffe://cluster.local/ns/demo/sa/'
DELAY = os.environ.get('OUTRIGGER_POD_TEST_DELAY', '0.2')
DELAY_QUERY = '?delay=' + DELAY if DELAY not in ('', '0') else ''
CERTS = '/etc/outrigger/certs'
T0 = time.monotonic()


def log(msg):
    print('[pod_test %5.1fs] %s' % (time.monotonic() - T0, msg), flush=True)


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    log('ok: ' + what)


def run(*cmd, check=True, timeout=120, input=None):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise Failed('%s: exit %d\n%s%s' % (' '.join(cmd), p.returncode, p.stdout[-2000:], p.stderr[-4000:]))
    return p


def wait_for(pred, timeout, what, tick=0.1):
    """Polls pred() until it returns something truthy; the tick is only the polling period."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            got = pred()
            if got:
                return got
        except Exception as e:  # noqa: BLE001 - a probe that fails is just not ready yet
            last = e
        if time.monotonic() > deadline:
            raise Failed('timed out after %.0fs waiting for %s%s' % (timeout, what, ' (last: %s)' % last if last else ''))
        time.sleep(tick)


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


# ---- Zipkin collector on the gateway -----------------------------------------------------
class Collector(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.spans, self.lock = [], threading.Lock()
        super().__init__((GATEWAY, ZIPKIN_PORT), CollectorHandler, bind_and_activate=False)
        # The gateway address appears on the host's bridge only once the first pod is up:
        # IP_FREEBIND lets the socket bind to it before that.
        self.socket.setsockopt(socket.SOL_IP, getattr(socket, 'IP_FREEBIND', 15), 1)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server_bind()
        self.server_activate()


class CollectorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'   # keep-alive, as Zipkin's own server
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        ok = self.path == '/api/v2/spans'
        if ok:
            with self.server.lock:
                self.server.spans.extend(json.loads(body))
        self.send_response(202 if ok else 404)
        self.send_header('content-length', '0')
        self.end_headers()

    def log_message(self, *_):
        pass


# ---- certificates ------------------------------------------------------------------------
def make_certs(d):
    """A CA and one leaf per workload, EC P-256, the SPIFFE ID as the URI SAN."""
    def ossl(*a):
        run('openssl', *a)
    ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
         '-subj', '/O=outrigger-pod-test/CN=pod test CA', '-keyout', f'{d}/ca.key', '-out', f'{d}/ca.crt',
         '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    for sa in ('client', 'server'):
        os.makedirs(f'{d}/{sa}')
        with open(f'{d}/{sa}.ext', 'w') as f:
            f.write('basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
                    'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:%s%s\n' % (TRUST, sa))
        ossl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
             '-subj', f'/O=outrigger-pod-test/CN={sa}', '-keyout', f'{d}/{sa}/tls.key', '-out', f'{d}/{sa}.csr')
        ossl('x509', '-req', '-in', f'{d}/{sa}.csr', '-CA', f'{d}/ca.crt', '-CAkey', f'{d}/ca.key',
             '-CAcreateserial', '-days', '1', '-extfile', f'{d}/{sa}.ext', '-out', f'{d}/{sa}/tls.crt')
        shutil.copy(f'{d}/ca.crt', f'{d}/{sa}/ca.crt')
        for f in os.listdir(f'{d}/{sa}'):
            os.chmod(f'{d}/{sa}/{f}', 0o644)   # the proxy runs as UID 2102
    out = run('openssl', 'x509', '-in', f'{d}/server/tls.crt', '-noout', '-ext', 'subjectAltName').stdout
    check(TRUST + 'server' in out, 'the server certificate carries URI SAN %sserver' % TRUST)


# ---- proxy configs -----------------------------------------------------------------------
def proxy_config(sa):
    """One sidecar's config: inbound mTLS on :15006, outbound on :15001, admin, tracing."""
    tls = {'cert': f'{CERTS}/tls.crt', 'key': f'{CERTS}/tls.key', 'ca': f'{CERTS}/ca.crt'}
    cfg = {
        'admin': {'address': f'0.0.0.0:{ADMIN_PORT}'},   # probes and this test reach it from outside
        'workers': 1,
        'log_level': 'info',
        'drain_timeout': '10s',
        'access_log': {'path': 'stdout', 'format': 'json'},
        'tracing': {'service_name': sa, 'collector_cluster': 'zipkin', 'sample_rate': 1.0,
                    'flush_interval': '200ms'},
        'listeners': [
            {'name': 'inbound', 'address': '0.0.0.0:15006', 'direction': 'inbound',
             'original_destination': True, 'application_address': '127.0.0.1',
             'tls': dict(tls, mode='strict', verify_identity=[TRUST + '*']),
             'filters': [{'type': 'tracing'}]},
            {'name': 'outbound', 'address': '127.0.0.1:15001', 'direction': 'outbound',
             'original_destination': True, 'passthrough': 'allow',
             'filters': [{'type': 'tracing'}]},
        ],
        'clusters': [
            {'name': 'app', 'endpoints': [f'127.0.0.1:{APP_PORT}']},   # inbound: the application
            {'name': 'zipkin', 'endpoints': [f'{GATEWAY}:{ZIPKIN_PORT}']},
        ],
    }
    if sa == 'client':
        # The server pod by its plain address, in mTLS to its sidecar, whose identity must be
        # the server's. A short connect timeout: once the pod is gone its address answers
        # nothing, and each of the 3 tries waits this long. A retry on reset covers a pooled connection that the draining server
        # proxy closed as the request went out: that request was never read there.
        cfg['listeners'][1]['routes'] = [
            {'name': 'server', 'match': {'hosts': [SERVER_IP]}, 'cluster': 'server', 'timeout': '5s',
             'retry': {'retry_on': ['connect-failure', 'reset'], 'num_retries': 2}}]
        cfg['clusters'].append(
            {'name': 'server', 'endpoints': [f'{SERVER_IP}:{APP_PORT}'], 'connect_timeout': '300ms',
             'tls': dict(tls, verify_identity=[TRUST + 'server'])})
    return cfg


# ---- manifests ---------------------------------------------------------------------------
def plain_pods(name, demo_image):
    """The application's Pods as a user writes them: no sidecar, a few annotations."""
    server = {
        'apiVersion': 'v1', 'kind': 'Pod',
        'metadata': {'name': f'{name}-server', 'labels': {'app': 'server'}, 'annotations': {
            'outrigger.io/config-map': f'{name}-server-config',
            'outrigger.io/cert-secret': f'{name}-server-certs',
            'outrigger.io/exclude-inbound-ports': str(EXCLUDED_PORT)}},
        'spec': {'containers': [{
            'name': 'app', 'image': demo_image,
            'args': ['server', '--port', str(APP_PORT), '--excluded-port', str(EXCLUDED_PORT), '--grace', '3'],
            'ports': [{'containerPort': APP_PORT}, {'containerPort': EXCLUDED_PORT}]}]},
    }
    client = {
        'apiVersion': 'v1', 'kind': 'Pod',
        'metadata': {'name': f'{name}-client', 'labels': {'app': 'client'}, 'annotations': {
            'outrigger.io/config-map': f'{name}-client-config',
            'outrigger.io/cert-secret': f'{name}-client-certs',
            'outrigger.io/exclude-outbound-ports': str(EXCLUDED_PORT)}},
        'spec': {'containers': [{
            'name': 'app', 'image': demo_image,
            # Each answer takes 0.2 s (OUTRIGGER_POD_TEST_DELAY), so that a request is likely
            # in flight when the server pod gets its SIGTERM.
            'args': ['client', f'http://{SERVER_IP}:{APP_PORT}/hello' + DELAY_QUERY, '--interval', '0.02',
                     '--timeout', '8']}]},
    }
    return server, client


def podman_quirks(doc):
    """Podman 4.3's `kube play` differs from a kubelet; only these are changed.

    Left as injected, though Podman 4.3 does not honour them: the sidecar's postStart hook
    (`outrigger wait`) is never run, so the application may start before its proxy is
    ready (the client tolerates it: it only counts from the first 200); the probes become
    healthchecks that need systemd timers, absent here (an error is logged, nothing else)."""
    if doc.get('kind') != 'Pod':
        return doc
    spec = doc['spec']
    # Init containers are run again when a pod restarts under restartPolicy Always (the
    # default), and a stopped pod would be restarted: Never, as for a one-off test pod.
    spec['restartPolicy'] = 'Never'
    for c in spec.get('initContainers', []) + spec.get('containers', []):
        # containerPort entries would be published on the host by some Podman versions:
        # the pods are reached by their own addresses here.
        c.pop('ports', None)
    for v in spec.get('volumes', []):
        # Without an explicit `optional: false`, Podman 4.3 may treat a missing secret as
        # optional and mount nothing.
        if 'secret' in v:
            v['secret']['optional'] = False
    return doc


def sanitizer_headroom(doc):
    """An ASan/UBSan build's shadow memory and allocator need more than the injected limits
    (the init container's 64Mi gets it killed, 137): the test's binary, not Podman, needs
    this, and only when pod_test.sh found a sanitizer build."""
    if doc.get('kind') != 'Pod':
        return doc
    for c in doc['spec'].get('initContainers', []) + doc['spec'].get('containers', []):
        if c['name'].startswith('outrigger'):
            limits = c.get('resources', {}).get('limits', {})
            if 'memory' in limits:
                limits['memory'] = '1Gi'
    return doc


def inject(binary, pod, image):
    p = run(binary, 'inject', '-f', '-', '--classic', '--image', image, input=yaml.safe_dump(pod))
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    pods = [d for d in docs if d.get('kind') == 'Pod']
    check(len(pods) == 1, 'inject prints the pod (%s)' % pod['metadata']['name'])
    spec = pods[0]['spec']
    init = [c for c in spec.get('initContainers', []) if c['name'] == 'outrigger-init']
    check(init and '--proxy-uid' in ' '.join(init[0].get('command', []) + init[0].get('args', [])),
          'inject added the outrigger-init container with --proxy-uid')
    check(spec['containers'][0]['name'] == 'outrigger', 'inject put the outrigger container first (classic)')
    return docs


def secret_yaml(name, d):
    # Podman 4.3 mounts a secret's `data` values as they are, without base64-decoding them
    # (a Kubernetes Secret's `data` is base64), so the PEM text goes in as is.
    data = {}
    for k in ('tls.crt', 'tls.key', 'ca.crt'):
        with open(os.path.join(d, k)) as f:
            data[k] = f.read()
    return yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': name}, 'data': data})


class LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's outrigger.yaml) as literal blocks."""


LiteralDumper.add_representer(str, lambda d, v: d.represent_scalar(
    'tag:yaml.org,2002:str', v, style='|' if '\n' in v else None))


# ---- observations ------------------------------------------------------------------------
def metrics(ip):
    _, text = http_get(f'http://{ip}:{ADMIN_PORT}/metrics')
    out = {}
    for line in text.splitlines():
        if line.startswith('outrigger_'):
            k, _, v = line.rpartition(' ')
            out[k] = float(v)
    return out


def msum(m, name, **labels):
    total = 0.0
    for k, v in m.items():
        n, _, rest = k.partition('{')
        if n == name and all(f'{lk}="{lv}"' in rest for lk, lv in labels.items()):
            total += v
    return total


PROXY_COUNTERS = ('outrigger_downstream_connections_total', 'outrigger_downstream_requests_total',
                  'outrigger_requests_total', 'outrigger_passthrough_connections_total', 'outrigger_tunnels_total')


def proxy_counters(ip):
    m = metrics(ip)
    return {n: msum(m, n) for n in PROXY_COUNTERS}


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('{'):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def container_log(name):
    p = run('podman', 'logs', name, check=False)
    return p.stdout


def container_log_all(name):
    p = run('podman', 'logs', name, check=False)
    return p.stdout + p.stderr


def parse_ts(s):
    """2026-12-02T12:54:14.815 (UTC, as the proxy logs) as seconds."""
    import calendar
    day, _, clock = s.partition('T')
    hms, _, frac = clock.partition('.')
    t = calendar.timegm(time.strptime(day + 'T' + hms, '%Y-%m-%dT%H:%M:%S'))
    return t + float('0.' + (frac or '0'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--binary', required=True)
    ap.add_argument('--image', required=True, help='the sidecar image under test')
    ap.add_argument('--demo-image', required=True, help='the application image (demo_app.py)')
    ap.add_argument('--sanitized', action='store_true', help='the binary is an ASan/UBSan build')
    a = ap.parse_args()

    name = 'outrigger-pod-test-%06x' % random.getrandbits(24)
    tmp = tempfile.mkdtemp(prefix=name + '-')
    undo = []          # cleanup steps, run in reverse
    keep = [False]     # a failed run keeps its files and logs for a look
    collector = None
    server_pod, client_pod = f'{name}-server', f'{name}-client'
    client_app, server_proxy = f'{client_pod}-app', f'{server_pod}-outrigger'
    try:
        # -- network ------------------------------------------------------------------------
        p = run('podman', 'network', 'create', '--subnet', SUBNET, '--gateway', GATEWAY, name, check=False)
        if p.returncode != 0 and 'already' in p.stderr:
            # A run that was killed before its cleanup left its network: only ours, by name.
            for n in run('podman', 'network', 'ls', '--format', '{{.Name}}').stdout.split():
                if n.startswith('outrigger-pod-test-'):
                    log('removing the leftover network %s' % n)
                    for pod in run('podman', 'pod', 'ps', '--format', '{{.Name}}').stdout.split():
                        if pod.startswith(n + '-'):
                            run('podman', 'pod', 'rm', '-f', pod, check=False)
                    run('podman', 'network', 'rm', '-f', n, check=False)
            p = run('podman', 'network', 'create', '--subnet', SUBNET, '--gateway', GATEWAY, name, check=False)
        if p.returncode != 0:
            raise Failed('podman network create: ' + p.stderr)
        undo.append(lambda: run('podman', 'network', 'rm', '-f', name, check=False))
        collector = Collector()
        threading.Thread(target=collector.serve_forever, daemon=True).start()

        # -- certificates, configs ------------------------------------------------------------
        make_certs(tmp)
        for sa in ('client', 'server'):
            os.makedirs(f'{tmp}/{sa}-config')
            with open(f'{tmp}/{sa}-config/outrigger.yaml', 'w') as f:
                yaml.safe_dump(proxy_config(sa), f, sort_keys=False)
            # The image's own binary checks the config where the files it names exist.
            p = run('podman', 'run', '--rm', '--network=none', '--entrypoint', '/usr/local/bin/outrigger',
                    '-v', f'{tmp}/{sa}:{CERTS}:ro', '-v', f'{tmp}/{sa}-config:/etc/outrigger/config:ro',
                    a.image, 'validate', '-c', '/etc/outrigger/config/outrigger.yaml', check=False)
            check(p.returncode == 0, f'the {sa} proxy config validates' + ('' if p.returncode == 0 else
                                                                          f'\n{p.stdout}{p.stderr}'))

        # -- pods -----------------------------------------------------------------------------
        server, client = plain_pods(name, a.demo_image)
        for sa, pod, ip in (('server', server, SERVER_IP), ('client', client, CLIENT_IP)):
            secret = f'{name}-{sa}-certs'
            with open(f'{tmp}/{sa}-secret.yaml', 'w') as f:
                f.write(secret_yaml(secret, f'{tmp}/{sa}'))
            run('podman', 'secret', 'create', secret, f'{tmp}/{sa}-secret.yaml')
            undo.append(lambda s=secret: run('podman', 'secret', 'rm', s, check=False))
            docs = [podman_quirks(d) for d in inject(a.binary, pod, a.image)]
            if a.sanitized:
                docs = [sanitizer_headroom(d) for d in docs]
            with open(f'{tmp}/{sa}-config/outrigger.yaml') as f:
                docs.append({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': f'{name}-{sa}-config'},
                             'data': {'outrigger.yaml': f.read()}})
            path = f'{tmp}/{sa}-pod.yaml'
            with open(path, 'w') as f:
                yaml.dump_all(docs, f, Dumper=LiteralDumper, sort_keys=False)
            undo.append(lambda n=pod['metadata']['name']: run('podman', 'pod', 'rm', '-f', '-t', '0', n, check=False))
            p = run('podman', 'kube', 'play', '--network', name, '--ip', ip, path, check=False)
            if p.returncode != 0:
                raise Failed(f'podman kube play {sa}: {p.stdout}{p.stderr}\n--- manifest\n' + open(path).read())
            log(f'{sa} pod started at {ip}')

        for ip, sa in ((SERVER_IP, 'server'), (CLIENT_IP, 'client')):
            wait_for(lambda ip=ip: http_get(f'http://{ip}:{ADMIN_PORT}/ready')[0] == 200, 30, f'the {sa} proxy /ready')
        log('both proxies ready')

        def client_results():
            return [r for r in json_lines(container_log(client_app)) if 'id' in r]

        # -- mesh -----------------------------------------------------------------------------
        ok200 = wait_for(lambda: (lambda ok: ok if len(ok) >= 5 else None)(
            [r for r in client_results() if r['status'] == 200 and f'"hostname":"{server_pod}"' in r['body']]),
            30, '5 answers 200 from the server application at the client')
        check(True, 'the client calls %s:%d and gets 200 from %s (%d so far)' % (SERVER_IP, APP_PORT, server_pod, len(ok200)))
        cm, sm = metrics(CLIENT_IP), metrics(SERVER_IP)
        check(msum(cm, 'outrigger_requests_total', listener='outbound', cluster='server', code='200') > 0,
              'the client proxy counted outbound requests to cluster server (outrigger_requests_total)')
        check(msum(sm, 'outrigger_requests_total', listener='inbound', code='200') > 0,
              'the server proxy counted inbound requests (outrigger_requests_total)')
        check(msum(sm, 'outrigger_downstream_connections_total', listener='inbound', tls='true') > 0,
              'the server proxy accepted TLS connections inbound')
        ids = {r['id'] for r in ok200}

        def identity_lines():
            return [e for e in json_lines(container_log(server_proxy))
                    if e.get('listener') == 'inbound' and e.get('request_id') in ids and e.get('response_code') == 200]
        lines = wait_for(identity_lines, 10, "the client's requests in the server proxy's access log")
        check(all(e.get('peer_identity') == TRUST + 'client' for e in lines),
              'the server proxy logs peer_identity %sclient (%d lines)' % (TRUST, len(lines)))

        def joint_trace():
            with collector.lock:
                spans = list(collector.spans)
            by = {}
            for s in spans:
                by.setdefault(s['traceId'], set()).add(s.get('localEndpoint', {}).get('serviceName'))
            return [t for t, svc in by.items() if {'client', 'server'} <= svc]
        traces = wait_for(joint_trace, 15, 'a trace with spans from both proxies at the collector', tick=0.2)
        check(True, 'the collector has %d traces with spans of both the client and the server proxy' % len(traces))

        # -- excluded port ----------------------------------------------------------------------
        run('podman', 'kill', '--signal', 'USR1', client_app)
        wait_for(lambda: any(r.get('paused') is True for r in json_lines(container_log(client_app))), 15,
                 'the client loop to pause')

        def quiet_counters():
            # Settled: the loop has paused, its proxy has counted every request it answered
            # (any HTTP status), and the server's every one answered 200.
            results = client_results()
            answered = len([r for r in results if r['status']])
            ok = len([r for r in results if r['status'] == 200])
            c, s = proxy_counters(CLIENT_IP), proxy_counters(SERVER_IP)
            key = 'outrigger_requests_total'
            return (c, s) if c[key] == answered and s[key] == ok else None
        before = wait_for(quiet_counters, 10, 'the proxies to go quiet')

        def exec_client(url, n):
            p = run('podman', 'exec', client_app, '/usr/bin/python3', '/usr/local/bin/demo_app.py', 'client', url,
                    '--count', str(n), '--interval', '0')
            return [r for r in json_lines(p.stdout) if 'id' in r]
        ex = exec_client(f'http://{SERVER_IP}:{EXCLUDED_PORT}/excluded', 5)
        check(len(ex) == 5 and all(r['status'] == 200 and f'"port":{EXCLUDED_PORT}' in r['body'] for r in ex),
              'the client reaches the server application on the excluded port %d' % EXCLUDED_PORT)
        # Then one call to the meshed port, which both proxies count: once it shows, anything
        # the excluded calls had moved would show too (each proxy serves its requests in order).
        ex = exec_client(f'http://{SERVER_IP}:{APP_PORT}/meshed', 1)
        check(ex and ex[0]['status'] == 200, 'one call to the meshed port answers 200')
        key = 'outrigger_requests_total'
        after = wait_for(lambda: (lambda c, s: c[key] != before[0][key] and s[key] != before[1][key] and (c, s))(
            proxy_counters(CLIENT_IP), proxy_counters(SERVER_IP)), 5, 'the counters to move for the meshed call')
        deltas = [after[i][key] - before[i][key] for i in (0, 1)]
        check(deltas == [1, 1], 'the proxies counted the one meshed call and none of the 5 excluded ones %s' % deltas)

        # -- shutdown under load ------------------------------------------------------------------
        run('podman', 'kill', '--signal', 'USR1', client_app)
        n0 = len(client_results())
        wait_for(lambda: len([r for r in client_results()[n0:] if r['status'] == 200]) >= 10, 15,
                 'steady load again (10 answers 200)')
        log('stopping the server pod under load')
        t_stop = time.time()
        # As the kubelet deletes a pod: SIGTERM to its containers at once, and the pod's network
        # (the sandbox; here the infra container) only once they have exited. `podman pod stop`
        # alone stops the infra container with the others, and the network goes while the
        # proxy is still draining: its last responses never leave the pod.
        p = run('podman', 'stop', '-t', '30', f'{server_pod}-app', f'{server_pod}-outrigger', timeout=60)
        run('podman', 'pod', 'stop', '-t', '5', server_pod, timeout=60)
        t_stopped = time.time()
        log('server pod stopped in %.1fs' % (t_stopped - t_stop))
        wait_for(lambda: len([r for r in client_results() if r['t'] > t_stopped]) >= 5, 30,
                 '5 client results after the server pod stopped')
        run('podman', 'kill', '--signal', 'USR1', client_app)
        wait_for(lambda: len([r for r in json_lines(container_log(client_app)) if r.get('paused') is True]) >= 2,
                 15, 'the client loop to pause again (its last request answered)')
        results = client_results()
        me = results[0]['id'].rsplit('-', 1)[0]
        results = [r for r in results if r['id'].startswith(me + '-')]
        accepted = {}
        for e in json_lines(container_log(server_proxy)):
            if e.get('listener') == 'inbound' and e.get('request_id', '').startswith(me + '-'):
                accepted[e['request_id']] = e
        window = [r for r in results if r['t'] >= t_stop - 2]
        lost, bad, refused = [], [], []
        for r in results:
            e = accepted.get(r['id'])
            if r['status'] == 200:
                continue
            if e is not None:
                lost.append((r, e))
            elif (r['status'] == 503 and r['error'] in ('connect_failure', 'no_healthy_upstream')) or \
                    (r['status'] == 0 and r['error'] == 'ECONNREFUSED'):
                refused.append(r)
            else:
                bad.append(r)
        not_answered = [e for e in accepted.values() if e.get('response_code') != 200]
        # In flight when the server proxy got its SIGTERM: accepted before, answered after.
        sigterm = re.search(r'^\[([0-9T:.-]+)\] \[info\] signal 15', container_log_all(server_proxy), re.M)
        in_flight = []
        if sigterm:
            ts = parse_ts(sigterm.group(1))
            in_flight = [e for e in accepted.values()
                         if parse_ts(e['start_time'].rstrip('Z')) <= ts <= parse_ts(e['start_time'].rstrip('Z'))
                         + e.get('duration_ms', 0) / 1000]
        got = {r['id'] for r in results}
        unseen = [i for i in accepted if i not in got]
        log('shutdown: %d client results around the stop (%d 200, %d refused before accept), '
            '%d requests the server proxy accepted in all, %d of them in flight at its SIGTERM%s' %
            (len(window), len([r for r in window if r['status'] == 200]), len(refused), len(accepted),
             len(in_flight), '' if sigterm else ' (no SIGTERM line found in its log)'))
        check(not lost, 'no accepted request answered other than 200 to the client %s' % lost[:5])
        check(not not_answered, 'the server proxy answered every request it accepted with 200 %s' % not_answered[:5])
        check(not bad, 'every other client outcome is a refusal before accept (503 connect_failure/'
              'no_healthy_upstream, ECONNREFUSED) %s' % bad[:5])
        check(not unseen, 'every request the server proxy accepted has its result at the client %s' % unseen[:5])
        check(len(refused) > 0, 'the client saw the server go away (refusals after the stop)')
        with open(f'{tmp}/server-proxy.log', 'w') as f:
            f.write(container_log(server_proxy))
        log('PASS')
        return 0
    except Failed as e:
        print('pod_test: FAILED: %s' % e, file=sys.stderr, flush=True)
        os.makedirs(f'{tmp}/logs', exist_ok=True)
        for c in (server_proxy, f'{server_pod}-app', f'{client_pod}-outrigger', client_app):
            out = run('podman', 'logs', '-t', c, check=False)
            with open(f'{tmp}/logs/{c}.log', 'w') as f:
                f.write(out.stdout + out.stderr)
            tail = (out.stdout + out.stderr).splitlines()[-15:]
            print('--- podman logs %s (last 15 lines)\n%s' % (c, '\n'.join(tail)), file=sys.stderr)
        with open(f'{tmp}/logs/spans.json', 'w') as f:
            json.dump(collector.spans if collector else [], f)
        keep[0] = True
        return 1
    finally:
        if collector:
            collector.shutdown()
            collector.server_close()
        for step in reversed(undo):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - clean up the rest whatever happens
                print('pod_test: cleanup: %s' % e, file=sys.stderr)
        if keep[0] or os.environ.get('POD_TEST_KEEP'):
            log('kept %s (configs, manifests, certificates%s)' % (tmp, ', logs/ of every container' if keep[0] else ''))
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
