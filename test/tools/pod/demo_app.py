#!/usr/bin/python3
"""The pod test's workload, for the python3-minimal of the demo image (no json, no http.*).

  demo_app.py server [--port 8080] [--excluded-port 8081] [--grace 2]
      HTTP/1.1 on both ports; every answer is 200 with the JSON body
      {"hostname": ..., "port": ..., "count": N} (N counts the requests on that port),
      after ?delay=SECONDS if the target has one.
      On SIGTERM it goes on serving for --grace seconds (the proxy in front drains
      first), then exits 0.
  demo_app.py client URL [--interval 0.05] [--timeout 5] [--count N]
      Calls URL (GET, a new connection each time) until --count results (default: for
      ever), one JSON line per result on stdout:
      {"seq", "id" (the x-request-id sent), "t", "status" (0: no response), "error"
      (x-outrigger-error, or the socket error such as ECONNREFUSED), "body"}.
      SIGUSR1 pauses and resumes the loop (a {"paused": true|false} line says when).
"""
import errno
import os
import signal
import socket
import sys
import threading
import time


def jstr(s):
    out = ['"']
    for ch in str(s):
        if ch in '"\\':
            out.append('\\' + ch)
        elif ord(ch) < 0x20:
            out.append('\\u%04x' % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def jobj(**kv):
    return '{' + ','.join('%s:%s' % (jstr(k), v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                     else ('true' if v is True else 'false' if v is False else jstr(v)))
                          for k, v in kv.items()) + '}'


def opt(args, name, default):
    return type(default)(args[args.index(name) + 1]) if name in args else default


def read_head(f):
    """Request or status line and headers (lower-case names), or None at end of file."""
    line = f.readline(8192)
    if not line:
        return None, {}
    headers = {}
    while True:
        h = f.readline(8192)
        if h in (b'\r\n', b'\n', b''):
            break
        k, _, v = h.decode('latin-1').partition(':')
        headers[k.strip().lower()] = v.strip()
    return line.decode('latin-1').strip(), headers


def server(args):
    ports = [opt(args, '--port', 8080), opt(args, '--excluded-port', 8081)]
    grace = opt(args, '--grace', 2.0)
    host = socket.gethostname()
    counts = {p: 0 for p in ports}
    lock = threading.Lock()

    def conn(sock, port):
        with sock, sock.makefile('rb') as f:
            while True:
                line, headers = read_head(f)
                if line is None:
                    return
                n = int(headers.get('content-length', '0') or 0)
                if n:
                    f.read(n)
                target = line.split(' ')[1] if ' ' in line else '/'
                if 'delay=' in target:   # ?delay=SECONDS: answer that much later (at most 5 s)
                    time.sleep(min(5.0, float(target.split('delay=', 1)[1].split('&')[0] or 0)))
                with lock:
                    counts[port] += 1
                    count = counts[port]
                body = (jobj(hostname=host, port=port, count=count) + '\n').encode()
                close = headers.get('connection', '').lower() == 'close'
                sock.sendall(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n'
                             % (len(body), b'connection: close\r\n' if close else b'') + body)
                if close:
                    return

    def listen(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', port))
        s.listen(128)
        while True:
            c, _ = s.accept()
            threading.Thread(target=conn, args=(c, port), daemon=True).start()

    for p in ports:
        threading.Thread(target=listen, args=(p,), daemon=True).start()
    print(jobj(serving=','.join(map(str, ports)), hostname=host), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print(jobj(sigterm=True, grace=grace), flush=True)
    time.sleep(grace)   # the proxy stops accepting first; what it already took still gets answers
    print(jobj(exiting=True, counts=','.join('%d=%d' % kv for kv in counts.items())), flush=True)
    return 0


def client(args):
    url = args[0]
    interval, timeout, count = opt(args, '--interval', 0.05), opt(args, '--timeout', 5.0), opt(args, '--count', 0)
    hostport, _, path = url.split('://', 1)[1].partition('/')
    host, _, port = hostport.partition(':')
    port = int(port or 80)
    me = '%s-%d' % (socket.gethostname(), os.getpid())
    paused = [False]

    def toggle(*_):
        paused[0] = not paused[0]

    signal.signal(signal.SIGUSR1, toggle)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    was_paused, seq = False, 0
    while count == 0 or seq < count:
        if paused[0] != was_paused:
            was_paused = paused[0]
            print(jobj(paused=was_paused, seq=seq), flush=True)
        if was_paused:
            time.sleep(0.02)
            continue
        seq += 1
        rid = '%s-%d' % (me, seq)
        status, error, body, t0 = 0, '', '', time.time()
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.sendall(('GET /%s HTTP/1.1\r\nhost: %s\r\nx-request-id: %s\r\nconnection: close\r\n\r\n'
                           % (path, hostport, rid)).encode())
                with s.makefile('rb') as f:
                    line, headers = read_head(f)
                    if line is None:
                        error = 'EOF'
                    else:
                        status = int(line.split()[1])
                        error = headers.get('x-outrigger-error', '')
                        body = f.read(int(headers.get('content-length', '0') or 0)).decode('utf-8', 'replace').strip()
        except OSError as e:
            error = errno.errorcode.get(e.errno, '') if e.errno else type(e).__name__
            error = error or type(e).__name__
        print(jobj(seq=seq, id=rid, t=round(t0, 3), status=status, error=error, body=body), flush=True)
        time.sleep(interval)
    return 0


if __name__ == '__main__':
    if len(sys.argv) < 2 or sys.argv[1] not in ('server', 'client') or (sys.argv[1] == 'client' and len(sys.argv) < 3):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(server(sys.argv[2:]) if sys.argv[1] == 'server' else client(sys.argv[2:]))
