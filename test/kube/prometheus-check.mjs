#!/usr/bin/env node
// Checks a Prometheus config embedded in a ConfigMap with promtool.
// usage: node prometheus-check.mjs [--modules DIR] PROMTOOL FILE CONFIGMAP KEY
// Exit 0: valid; 1: not; 77: no PROMTOOL (a ctest SKIP).
//
// Debian 12's promtool (2.42) is built without Kubernetes service discovery: it
// refuses `kubernetes_sd_configs` as an unknown field. When it does, this script
// checks those blocks itself (role and keys) and has promtool check a copy with each
// `kubernetes_sd_configs` replaced by an empty `static_configs`, so that the rest
// (relabel rules and their regexes, scrape settings) is still promtool's to judge.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { findNodeModules, loadModule } from '../tools/kube/modules.mjs';

const args = process.argv.slice(2);
let modules = null;
if (args[0] === '--modules') { modules = args[1]; args.splice(0, 2); }
if (args.length !== 4) {
  process.stderr.write('usage: node prometheus-check.mjs [--modules DIR] PROMTOOL FILE CONFIGMAP KEY\n');
  process.exit(2);
}
const [promtool, file, name, key] = args;
const YAML = await loadModule(findNodeModules(modules, 'prometheus-check.mjs'), 'yaml/dist/index.js');

let config = null;
for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))) {
  const o = doc.toJS();
  if (o && o.kind === 'ConfigMap' && o.metadata?.name === name && typeof o.data?.[key] === 'string') config = o.data[key];
}
if (config === null) { console.log(`${file}: no ConfigMap '${name}' with data key '${key}'`); process.exit(1); }

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prometheus-check-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const check = (text) => {
  const f = path.join(dir, key);
  fs.writeFileSync(f, text);
  const r = spawnSync(promtool, ['check', 'config', f], { encoding: 'utf8' });
  if (r.error?.code === 'ENOENT') { console.log(`${promtool} not found (Debian's prometheus package has it): skipping`); process.exit(77); }
  return { ok: r.status === 0, out: `${r.stdout || ''}${r.stderr || ''}${r.error ? r.error.message : ''}`.trim() };
};

let r = check(config);
if (r.ok) { console.log(r.out); console.log(`${file}: ${name}/${key}: promtool check config ok`); process.exit(0); }
if (!/field kubernetes_sd_configs not found/.test(r.out)) { console.log(r.out); process.exit(1); }

console.log(`${promtool} has no Kubernetes service discovery (Debian's build): checking kubernetes_sd_configs here`);
const ROLES = ['node', 'service', 'pod', 'endpoints', 'endpointslice', 'ingress'];
const KEYS = ['role', 'api_server', 'kubeconfig_file', 'namespaces', 'selectors', 'attach_metadata',
  'basic_auth', 'authorization', 'oauth2', 'follow_redirects', 'enable_http2', 'tls_config', 'proxy_url',
  'no_proxy', 'proxy_from_environment', 'proxy_connect_header'];
const parsed = YAML.parse(config);
const problems = [];
for (const [i, job] of (parsed.scrape_configs || []).entries()) {
  if (!('kubernetes_sd_configs' in job)) continue;
  const where = `scrape_configs[${i}] (${job.job_name})`;
  const sds = job.kubernetes_sd_configs;
  if (!Array.isArray(sds) || sds.length === 0) problems.push(`${where}: kubernetes_sd_configs: expected a non-empty list`);
  else sds.forEach((sd, j) => {
    if (!sd || typeof sd !== 'object') { problems.push(`${where}: kubernetes_sd_configs[${j}]: expected a mapping`); return; }
    if (!ROLES.includes(sd.role)) problems.push(`${where}: kubernetes_sd_configs[${j}].role: '${sd.role}' is not one of ${ROLES.join(', ')}`);
    for (const k of Object.keys(sd)) if (!KEYS.includes(k)) problems.push(`${where}: kubernetes_sd_configs[${j}]: unknown field '${k}'`);
  });
  delete job.kubernetes_sd_configs;
  job.static_configs = [...(job.static_configs || []), { targets: [] }];
}
for (const p of problems) console.log(p);
r = check(YAML.stringify(parsed));
console.log(r.out);
if (!r.ok || problems.length) process.exit(1);
console.log(`${file}: ${name}/${key}: promtool check config ok (kubernetes_sd_configs checked here)`);
