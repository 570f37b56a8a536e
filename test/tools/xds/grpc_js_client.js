// Google's xDS client for gRPC (@grpc/grpc-js-xds), as a test peer for crosscheck.py.
//
// usage: node grpc_js_client.js --modules DIR/node_modules --target xds:///NAME
//            [--method /outrigger.test.Echo/Unary] [--interval-ms 100]
//            [--deadline-ms 2000] [--max-seconds 50]
// GRPC_XDS_BOOTSTRAP must name the bootstrap file (the control plane to use).
//
// Makes one unary call every --interval-ms through the xds: target, for as long
// as stdin stays open (the parent closes it to stop us) and at most --max-seconds,
// and prints one JSON line per call:
//   {"seq": 3, "ok": true, "backend": "A", "code": 0, "details": "", "ms": 2.1}
// The backends answer with their own name, so `backend` says who served the call.
// One long-lived channel on purpose: the point is to watch the client follow the
// control plane's updates, not to start from scratch each time.
// Messages are raw bytes both ways (no .proto), like test/tools/grpc/grpc_peer.py.
'use strict';

const path = require('path');
const { createRequire } = require('module');

function parseArgs(argv) {
  const args = {
    method: '/outrigger.test.Echo/Unary', intervalMs: 100, deadlineMs: 2000, maxSeconds: 50,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--modules': args.modules = value; break;
      case '--target': args.target = value; break;
      case '--method': args.method = value; break;
      case '--interval-ms': args.intervalMs = Number(value); break;
      case '--deadline-ms': args.deadlineMs = Number(value); break;
      case '--max-seconds': args.maxSeconds = Number(value); break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (!args.modules || !args.target) throw new Error('--modules and --target are required');
  return args;
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`grpc_js_client.js: ${e.message}`);
    process.exit(2);
  }
  // Load both packages from the cache install, through one resolver, so that
  // grpc-js-xds registers its resolver with the very grpc-js we call through.
  const load = createRequire(path.join(path.resolve(args.modules), 'x.js'));
  const grpc = load('@grpc/grpc-js');
  const grpcXds = load('@grpc/grpc-js-xds');
  grpcXds.register();

  const client = new grpc.Client(args.target, grpc.credentials.createInsecure());
  const identity = (b) => b;
  let seq = 0;
  let stopping = false;

  const stop = (code) => {
    if (stopping) return;
    stopping = true;
    client.close();
    // Exit now: the xDS client keeps its ADS stream (and timers) alive.
    process.exit(code);
  };
  process.stdin.on('end', () => stop(0));
  process.stdin.on('error', () => stop(0));
  process.stdin.resume();
  setTimeout(() => stop(0), args.maxSeconds * 1000).unref();

  const callOnce = () => {
    if (stopping) return;
    const n = ++seq;
    const started = process.hrtime.bigint();
    const deadline = new Date(Date.now() + args.deadlineMs);
    client.makeUnaryRequest(args.method, identity, identity, Buffer.from(`call-${n}`), { deadline },
      (err, reply) => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const line = err
          ? { seq: n, ok: false, backend: null, code: err.code, details: err.details, ms }
          : { seq: n, ok: true, backend: reply.toString('latin1'), code: 0, details: '', ms };
        process.stdout.write(JSON.stringify(line) + '\n');
        setTimeout(callOnce, args.intervalMs);
      });
  };
  callOnce();
}

main();
