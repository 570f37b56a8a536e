#!/usr/bin/python3
"""grpc_peer.py - a real gRPC server and client for Outrigger's tests.

Runs under Debian's /usr/bin/python3 with python3-grpcio (1.51). No protoc
stubs: every handler works on raw bytes through grpc's generic handlers.

Subcommands:
  server  serve outrigger.test.Echo (Unary, ServerStream, ClientStream, Bidi)
  call    make one call and print one JSON object describing the outcome
  load    open-loop unary load at a fixed rate, print one JSON summary

See README.md next to this file for the metadata that steers the server.
"""

import argparse
import binascii
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "outrigger.test.Echo"
METHODS = ("Unary", "ServerStream", "ClientStream", "Bidi")

CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 0),
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


def _md_value_to_json(key, value):
    if key.endswith("-bin") or isinstance(value, (bytes, bytearray)):
        if isinstance(value, str):
            value = value.encode("latin-1")
        return binascii.hexlify(bytes(value)).decode("ascii")
    return value


def _md_to_dict(md):
    """Metadata tuples -> {key: value}; bin values hex; repeated keys -> list."""
    out = {}
    for key, value in md or ():
        v = _md_value_to_json(key, value)
        if key in out:
            if isinstance(out[key], list):
                out[key].append(v)
            else:
                out[key] = [out[key], v]
        else:
            out[key] = v
    return out


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------


class EchoServer:
    def __init__(self, log_calls):
        self.log_calls = log_calls
        self.lock = threading.Lock()
        self.fail_counts = {}  # x-key -> calls seen so far
        self.calls = []  # recorded calls (kept for in-process use)

    # -- helpers -----------------------------------------------------------

    def _begin(self, method, context):
        """Record the call, apply sleep/echo metadata. Returns the metadata dict
        (last value per key) so the handler can decide whether to abort."""
        md = list(context.invocation_metadata() or ())
        remaining = context.time_remaining()
        if remaining is not None and remaining > 1e9:
            remaining = None  # no deadline: grpc reports ~2**63 seconds
        record = {
            "method": method,
            "metadata": _md_to_dict(md),
            "time_remaining": remaining,
        }
        with self.lock:
            self.calls.append(record)
            if self.log_calls:
                sys.stdout.write(json.dumps(record) + "\n")
                sys.stdout.flush()

        last = {}
        for k, v in md:
            last[k] = v

        echo = [(k, v) for k, v in md if k.startswith("x-echo-")]
        if echo:
            context.send_initial_metadata(tuple(echo))
        context.set_trailing_metadata(tuple(echo) + (("x-trailer", "done"),))

        sleep_ms = last.get("x-sleep-ms")
        if sleep_ms:
            try:
                delay = float(sleep_ms) / 1000.0
            except ValueError:
                delay = 0.0
            end = time.monotonic() + delay
            while context.is_active():
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.01))
        return last

    def _status_for(self, last):
        """(code, message) if this call must fail, else None."""
        status = last.get("x-status")
        if status:
            message = last.get("x-message", "")
            code = _parse_code(status)
            if code is None:
                return grpc.StatusCode.UNKNOWN, "bad x-status %r: %s" % (status, message)
            if code == grpc.StatusCode.OK:
                return None
            return code, message
        fail_first = last.get("x-fail-first")
        if fail_first:
            try:
                n = int(fail_first)
            except ValueError:
                n = 0
            key = last.get("x-key", "")
            with self.lock:
                seen = self.fail_counts.get(key, 0)
                self.fail_counts[key] = seen + 1
            if seen < n:
                return (grpc.StatusCode.UNAVAILABLE,
                        last.get("x-message", "fail-first %d/%d key=%s" % (seen + 1, n, key)))
        return None

    # -- handlers ----------------------------------------------------------

    def unary(self, request, context):
        last = self._begin("Unary", context)
        fail = self._status_for(last)
        if fail:
            context.abort(*fail)
        return request

    def server_stream(self, request, context):
        last = self._begin("ServerStream", context)
        fail = self._status_for(last)
        try:
            n = int(bytes(request).decode("ascii").strip() or "0")
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "request must be an ASCII integer")
        if fail:
            # one body message first, so the status arrives in trailers
            yield b"msg-0"
            context.abort(*fail)
        for i in range(n):
            if not context.is_active():
                return
            yield b"msg-%d" % i

    def client_stream(self, request_iterator, context):
        last = self._begin("ClientStream", context)
        fail = self._status_for(last)
        if fail:
            context.abort(*fail)
        return b"".join(request_iterator)

    def bidi(self, request_iterator, context):
        last = self._begin("Bidi", context)
        fail = self._status_for(last)
        if fail:
            context.abort(*fail)
        for msg in request_iterator:
            yield msg

    def generic_handler(self):
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(
                self.unary, request_deserializer=None, response_serializer=None),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                self.server_stream, request_deserializer=None, response_serializer=None),
            "ClientStream": grpc.stream_unary_rpc_method_handler(
                self.client_stream, request_deserializer=None, response_serializer=None),
            "Bidi": grpc.stream_stream_rpc_method_handler(
                self.bidi, request_deserializer=None, response_serializer=None),
        })


def _parse_code(text):
    text = text.strip()
    if text.isdigit():
        for c in grpc.StatusCode:
            if c.value[0] == int(text):
                return c
        return None
    return grpc.StatusCode.__members__.get(text.upper())


def _hostport(host, port):
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "%s:%d" % (host, port)


def cmd_server(args):
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.stderr.write("--tls-cert and --tls-key go together\n")
        return 2
    echo = EchoServer(args.log_calls)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        handlers=(echo.generic_handler(),),
        options=[("grpc.so_reuseport", 0),
                 ("grpc.max_receive_message_length", -1),
                 ("grpc.max_send_message_length", -1)],
    )
    addr = _hostport(args.host, args.port)
    if args.tls_cert:
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        with open(args.tls_key, "rb") as f:
            key = f.read()
        creds = grpc.ssl_server_credentials([(key, cert)])
        port = server.add_secure_port(addr, creds)
    else:
        port = server.add_insecure_port(addr)
    if not port:
        sys.stderr.write("could not bind %s\n" % addr)
        return 1

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server.start()
    sys.stdout.write("LISTENING %d\n" % port)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.stop(grace=1.0).wait(5)
    return 0


# --------------------------------------------------------------------------
# client
# --------------------------------------------------------------------------


class UsageError(Exception):
    pass


def _make_channel(target, tls_ca=None, authority=None, extra_options=()):
    options = list(CHANNEL_OPTIONS) + list(extra_options)
    if tls_ca:
        with open(tls_ca, "rb") as f:
            ca = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
        if authority:
            options.append(("grpc.ssl_target_name_override", authority))
            options.append(("grpc.default_authority", authority))
        return grpc.secure_channel(target, creds, options=options)
    if authority:
        options.append(("grpc.default_authority", authority))
    return grpc.insecure_channel(target, options=options)


def _parse_metadata(args):
    md = []
    for group in args.metadata or ():
        for item in group:
            if "=" not in item:
                raise UsageError("--metadata wants k=v, got %r" % item)
            k, v = item.split("=", 1)
            k = k.strip().lower()
            if not k:
                raise UsageError("empty metadata key in %r" % item)
            if k.endswith("-bin"):
                md.append((k, v.encode("latin-1")))
            else:
                md.append((k, v))
    for group in args.metadata_bin or ():
        for item in group:
            if "=" not in item:
                raise UsageError("--metadata-bin wants k=HEX, got %r" % item)
            k, v = item.split("=", 1)
            k = k.strip().lower()
            if not k.endswith("-bin"):
                raise UsageError("--metadata-bin key must end in -bin: %r" % k)
            try:
                md.append((k, binascii.unhexlify(v.strip())))
            except (binascii.Error, ValueError):
                raise UsageError("--metadata-bin value is not hex: %r" % v)
    return md


def _call_result(call, responses, code=None, details=None):
    try:
        initial = call.initial_metadata()
    except Exception:  # noqa: BLE001 - some error paths have none
        initial = None
    try:
        trailing = call.trailing_metadata()
    except Exception:  # noqa: BLE001
        trailing = None
    if code is None:
        code = call.code()
    if details is None:
        details = call.details()
    return {
        "code": code.name if code is not None else "UNKNOWN",
        "details": details or "",
        "responses": [bytes(r).decode("latin-1") for r in responses],
        "initial_metadata": _md_to_dict(initial),
        "trailing_metadata": _md_to_dict(trailing),
    }


def _error_result(err, responses):
    if isinstance(err, grpc.Call):
        return _call_result(err, responses)
    return {"code": "UNKNOWN", "details": str(err), "responses":
            [bytes(r).decode("latin-1") for r in responses],
            "initial_metadata": {}, "trailing_metadata": {}}


def cmd_call(args):
    try:
        md = _parse_metadata(args)
    except UsageError as e:
        sys.stderr.write("usage error: %s\n" % e)
        return 2
    if args.count is not None and args.method != "ServerStream":
        sys.stderr.write("usage error: --count is for ServerStream\n")
        return 2
    if args.authority and not args.tls_ca:
        pass  # plain h2c with an explicit :authority is fine
    if args.method == "ServerStream":
        data = str(args.count) if args.count is not None else (args.data if args.data is not None else "0")
    else:
        data = args.data if args.data is not None else ""
    if args.messages is not None:
        messages = [m.encode("latin-1") for m in args.messages.split(",")] if args.messages else []
    else:
        messages = [data.encode("latin-1")] if args.data is not None else []
    request = data.encode("latin-1")

    try:
        channel = _make_channel(args.target, args.tls_ca, args.authority)
    except OSError as e:
        sys.stderr.write("usage error: %s\n" % e)
        return 2
    path = "/%s/%s" % (SERVICE, args.method)
    kw = {"metadata": md or None, "timeout": args.timeout}
    responses = []
    try:
        if args.method == "Unary":
            mc = channel.unary_unary(path)
            try:
                resp, call = mc.with_call(request, **kw)
                responses.append(resp)
                result = _call_result(call, responses)
            except grpc.RpcError as err:
                result = _error_result(err, responses)
        elif args.method == "ServerStream":
            mc = channel.unary_stream(path)
            it = mc(request, **kw)
            try:
                for resp in it:
                    responses.append(resp)
            except grpc.RpcError:
                pass
            result = _call_result(it, responses)
        elif args.method == "ClientStream":
            mc = channel.stream_unary(path)
            try:
                resp, call = mc.with_call(iter(messages), **kw)
                responses.append(resp)
                result = _call_result(call, responses)
            except grpc.RpcError as err:
                result = _error_result(err, responses)
        else:  # Bidi
            mc = channel.stream_stream(path)
            it = mc(iter(messages), **kw)
            try:
                for resp in it:
                    responses.append(resp)
            except grpc.RpcError:
                pass
            result = _call_result(it, responses)
    except ValueError as e:  # e.g. invalid metadata rejected by grpc
        sys.stderr.write("usage error: %s\n" % e)
        channel.close()
        return 2
    channel.close()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------


def _percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def _open_load_channel(args, wait_s):
    """Channel for load, connected (or given up on) before the clock starts."""
    channel = _make_channel(args.target, args.tls_ca, args.authority)
    try:
        grpc.channel_ready_future(channel).result(timeout=max(0.05, wait_s))
    except grpc.FutureTimeoutError:
        pass  # unreachable: the calls themselves will report it as errors
    return channel


def _load_worker(args, channel, start, index, stride, hard_end):
    """Issue calls index, index+stride, ... scheduled at start + i/rate.
    Returns (sent, ok, errors, latencies_ms_of_ok, first_send, last_done)."""
    total = args.count if args.count is not None else int(round(args.rate * args.duration))
    mc = channel.unary_unary("/%s/Unary" % SERVICE)
    payload = b"x" * args.size
    slots = threading.Semaphore(args.concurrency)
    lock = threading.Lock()
    state = {"ok": 0, "errors": 0, "pending": 0, "last_done": start}
    lat = []
    all_done = threading.Event()
    sending_done = [False]

    def done_cb(fut, scheduled):
        now = time.monotonic()
        try:
            ok = fut.code() == grpc.StatusCode.OK
        except Exception:  # noqa: BLE001
            ok = False
        slots.release()
        with lock:
            if ok:
                state["ok"] += 1
                lat.append((now - scheduled) * 1000.0)
            else:
                state["errors"] += 1
            state["pending"] -= 1
            state["last_done"] = now
            if sending_done[0] and state["pending"] == 0:
                all_done.set()

    sent = 0
    for i in range(index, total, stride):
        scheduled = start + i / float(args.rate)
        if scheduled > start + args.duration:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # bounded in-flight: waiting for a slot counts toward latency
        while not slots.acquire(timeout=0.1):
            if time.monotonic() > hard_end:
                break
        if time.monotonic() > hard_end:
            break
        with lock:
            state["pending"] += 1
        sent += 1
        try:
            fut = mc.future(payload, timeout=args.call_timeout)
        except Exception:  # noqa: BLE001
            slots.release()
            with lock:
                state["pending"] -= 1
                state["errors"] += 1
            continue
        fut.add_done_callback(lambda f, s=scheduled: done_cb(f, s))
    with lock:
        sending_done[0] = True
        if state["pending"] == 0:
            all_done.set()
    all_done.wait(max(0.0, hard_end - time.monotonic()))
    with lock:
        ok, errors = state["ok"], state["errors"]
        unfinished = state["pending"]
        last_done = time.monotonic() if unfinished else state["last_done"]
        latencies = list(lat)
    channel.close()
    return sent, ok, errors + unfinished, latencies, last_done


def _summary(sent, ok, errors, latencies, elapsed, args):
    latencies.sort()
    r = lambda v: None if v is None else round(v, 3)  # noqa: E731
    return {
        "sent": sent,
        "ok": ok,
        "errors": errors,
        "achieved_rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": r(_percentile(latencies, 50)),
        "p90_ms": r(_percentile(latencies, 90)),
        "p99_ms": r(_percentile(latencies, 99)),
        "max_ms": r(latencies[-1] if latencies else None),
        "target_rps": args.rate,
        "duration_s": round(elapsed, 3),
        "procs": args.procs,
    }


def cmd_load(args):
    if args.rate <= 0 or args.duration <= 0 or args.concurrency <= 0 or args.procs <= 0:
        sys.stderr.write("usage error: --rate, --duration, --concurrency, --procs must be > 0\n")
        return 2
    t0 = time.monotonic()
    if args.procs == 1 or args.worker_index is not None:
        if args.start_at is not None:
            # shared wall-clock start from the parent -> local monotonic start
            start = time.monotonic() + (args.start_at - time.time())
            channel = _open_load_channel(args, start - time.monotonic() - 0.05)
            hard_end = start + args.duration + 10.0
        else:
            channel = _open_load_channel(args, 2.0)
            start = time.monotonic() + 0.05
            hard_end = t0 + args.duration + 10.0  # hard cap on the whole run
        index = args.worker_index or 0
        stride = args.procs if args.worker_index is not None else 1
        sent, ok, errors, lat, last_done = _load_worker(args, channel, start, index, stride, hard_end)
        if args.worker_index is not None:
            # raw output for the parent to merge
            sys.stdout.write(json.dumps({"sent": sent, "ok": ok, "errors": errors,
                                         "latencies": lat,
                                         "elapsed": last_done - start}) + "\n")
            sys.stdout.flush()
            return 0
        elapsed = max(last_done - start, 1e-9)
        sys.stdout.write(json.dumps(_summary(sent, ok, errors, lat, elapsed, args)) + "\n")
        sys.stdout.flush()
        return 0

    # several processes, each taking every procs-th slot of one schedule
    # children start together; each gets the same hard cap (+ start-up lead)
    start_at = time.time() + 1.0 + 0.2 * args.procs
    base = [sys.executable, os.path.abspath(__file__), "load",
            "--target", args.target, "--rate", str(args.rate),
            "--duration", str(args.duration), "--size", str(args.size),
            "--concurrency", str(max(1, args.concurrency // args.procs)),
            "--call-timeout", str(args.call_timeout),
            "--procs", str(args.procs), "--start-at", repr(start_at)]
    if args.count is not None:
        base += ["--count", str(args.count)]
    if args.tls_ca:
        base += ["--tls-ca", args.tls_ca]
    if args.authority:
        base += ["--authority", args.authority]
    children = [subprocess.Popen(base + ["--worker-index", str(k)], stdout=subprocess.PIPE)
                for k in range(args.procs)]
    sent = ok = errors = 0
    lat = []
    elapsed = 0.0
    for p in children:
        try:
            out, _ = p.communicate(timeout=max(1.0, start_at - time.time()) + args.duration + 12)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        try:
            d = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            errors += 1
            continue
        sent += d["sent"]
        ok += d["ok"]
        errors += d["errors"]
        lat.extend(d["latencies"])
        elapsed = max(elapsed, d["elapsed"])
    sys.stdout.write(json.dumps(_summary(sent, ok, errors, lat, max(elapsed, 1e-9), args)) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------


def build_parser():
    p = argparse.ArgumentParser(prog="grpc_peer.py", description="gRPC test peer for Outrigger")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("server", help="serve outrigger.test.Echo")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--log-calls", action="store_true")
    s.add_argument("--workers", type=int, default=128, help="handler threads")

    c = sub.add_parser("call", help="make one call, print JSON")
    c.add_argument("--target", required=True)
    c.add_argument("--method", required=True, choices=METHODS)
    c.add_argument("--data")
    c.add_argument("--messages")
    c.add_argument("--count", type=int)
    c.add_argument("--metadata", action="append", nargs="+", metavar="K=V")
    c.add_argument("--metadata-bin", action="append", nargs="+", metavar="K=HEX")
    c.add_argument("--timeout", type=float)
    c.add_argument("--tls-ca")
    c.add_argument("--authority")

    lo = sub.add_parser("load", help="open-loop unary load")
    lo.add_argument("--target", required=True)
    lo.add_argument("--rate", type=float, default=1000.0)
    lo.add_argument("--duration", type=float, default=10.0)
    lo.add_argument("--count", type=int)
    lo.add_argument("--size", type=int, default=16)
    lo.add_argument("--concurrency", type=int, default=64)
    lo.add_argument("--call-timeout", type=float, default=5.0)
    lo.add_argument("--procs", type=int, default=1)
    lo.add_argument("--tls-ca")
    lo.add_argument("--authority")
    lo.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    lo.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "server":
        return cmd_server(args)
    if args.cmd == "call":
        return cmd_call(args)
    return cmd_load(args)


if __name__ == "__main__":
    sys.exit(main())
