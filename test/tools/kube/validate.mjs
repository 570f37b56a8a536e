#!/usr/bin/env node
// Validates Kubernetes manifests against the Kubernetes OpenAPI schema
// (kubernetes-models' generated validators), offline.
//
// usage: node validate.mjs [--modules DIR] FILE...      (FILE "-" is stdin)
//
// Each file may hold many YAML documents; a `kind: List` is checked item by item.
// Every object is validated by its apiVersion/kind (types, enums, required fields),
// and then its keys are compared with the fields the schema knows, since the
// validators accept unknown fields (a misspelt `contaienrs` would pass them).
// An object of a kind not listed below is an error.
//
// Output: `FILE: N objects ok` per good file; per problem
// `FILE:docINDEX kind/name: path: message` (INDEX counts documents from 0; a List
// item is `docINDEX.items[J]`). Exit 0 when every file is good, 1 when any
// problem was found, 2 on bad usage or when the packages are not installed.
//
// The packages (test/tools/kube/npm-install.sh installs them) are looked up in
// --modules DIR, $OUTRIGGER_KUBE_VALIDATE_DIR, each $NODE_PATH entry, this
// script's directory, then $HOME/.cache/outrigger-kube-validate. DIR is an
// install directory (holding node_modules/) or a node_modules directory itself.
import fs from 'node:fs';
import path from 'node:path';
import { findNodeModules, loadModule } from './modules.mjs';

const KINDS = {
  'v1': ['Pod', 'Service', 'ConfigMap', 'Secret', 'Namespace', 'ServiceAccount'],
  'apps/v1': ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'],
  'batch/v1': ['Job', 'CronJob'],
  'rbac.authorization.k8s.io/v1': ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'],
};
// kubernetes-models' module for each apiVersion.
const MODULE_DIR = { 'v1': 'v1', 'apps/v1': 'apps/v1', 'batch/v1': 'batch/v1',
  'rbac.authorization.k8s.io/v1': 'rbac.authorization.k8s.io/v1' };

function usage(msg) {
  if (msg) process.stderr.write(`validate.mjs: ${msg}\n`);
  process.stderr.write('usage: node validate.mjs [--modules DIR] FILE...   (FILE - is stdin)\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let modulesArg = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--modules') { modulesArg = args[++i]; if (!modulesArg) usage('--modules needs a directory'); }
  else if (args[i] === '-h' || args[i] === '--help') usage();
  else if (args[i].startsWith('--')) usage(`unknown option ${args[i]}`);
  else files.push(args[i]);
}
if (files.length === 0) usage('no FILE given');

const NM = findNodeModules(modulesArg, 'validate.mjs');
const load = (rel) => loadModule(NM, rel);
const YAML = await load('yaml/dist/index.js');
const models = {};
for (const [apiVersion, dir] of Object.entries(MODULE_DIR)) {
  models[apiVersion] = await load(`kubernetes-models/${dir}/index.js`);
}

// --- the schema's field names, read from the packages' type declarations ---
// kubernetes-models ships a .d.ts per type: `export interface IX { "field"?: TYPE; ... }`,
// with TYPE a primitive, another interface (imported from its file), Array<...> or
// {[key: string]: ...}. That is enough to know, for every object in a manifest, which
// keys the schema has, without the compiled validators' help.
const typeCache = new Map(); // .d.ts path -> { fields: Map(name -> TYPE), imports: Map(ident -> path) } | null

function parseDts(file) {
  if (typeCache.has(file)) return typeCache.get(file);
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch { typeCache.set(file, null); return null; }
  text = text.replace(/\/\*[\s\S]*?\*\//g, '');
  const imports = new Map();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    const spec = m[2];
    let target;
    if (spec.startsWith('.')) target = path.resolve(path.dirname(file), spec.replace(/\.js$/, '') + '.d.ts');
    else target = path.join(NM, spec.replace(/\.js$/, '') + '.d.ts');
    for (const ident of m[1].split(',').map((s) => s.trim()).filter(Boolean)) imports.set(ident, target);
  }
  const body = /export interface \w+(?: extends [\w, ]+)? \{([\s\S]*?)\n\}/.exec(text);
  if (!body) { typeCache.set(file, null); return null; }
  // Fields end at a `;` outside any brackets; a type may span lines (`{ [key: string]: string; }`).
  const fields = new Map();
  let depth = 0; let start = 0;
  const src = body[1].replace(/\s+/g, ' ');
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if ('{<(['.includes(c)) depth++;
    else if ('}>)]'.includes(c) && src[i - 1] !== '=') depth--;
    else if (c === ';' && depth === 0) {
      const m = /^\s*"([^"]+)"\??:\s*(.+?)\s*$/.exec(src.slice(start, i));
      if (m) fields.set(m[1], m[2]);
      start = i + 1;
    }
  }
  const info = { fields, imports };
  typeCache.set(file, info);
  return info;
}

function jsonPath(base, key) {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

// Checks `value` against TYPE (a type expression of file `info`), collecting unknown keys.
function checkType(value, type, info, where, problems) {
  if (value === null || typeof value !== 'object') return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => checkType(v, m[1], info, jsonPath(where, i), problems));
    return;
  }
  if ((m = /^\{\s*\[key: string\]: (.+?);?\s*\}$/.exec(type))) {
    if (!Array.isArray(value)) for (const [k, v] of Object.entries(value)) checkType(v, m[1], info, jsonPath(where, k), problems);
    return;
  }
  if (/^I\w+$/.test(type) && info.imports.has(type)) {
    const sub = parseDts(info.imports.get(type));
    if (sub) checkFields(value, sub, where, problems);
  }
}

function checkFields(obj, info, where, problems) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return;
  for (const [k, v] of Object.entries(obj)) {
    const type = info.fields.get(k);
    if (type === undefined) {
      problems.push({ path: jsonPath(where, k), message: `unknown field '${k}'${suggest(k, [...info.fields.keys()])}` });
      continue;
    }
    checkType(v, type, info, jsonPath(where, k), problems);
  }
}

function suggest(word, known) {
  let best = null; let bestD = Infinity;
  for (const k of known) {
    const d = distance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) { bestD = d; best = k; }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(word.length / 3)) ? `; did you mean '${best}'?` : '';
}

function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]; row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

// --- validation ---
function pointerToPath(pointer) {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out = jsonPath(out, /^\d+$/.test(seg) ? Number(seg) : seg);
  }
  return out;
}

function schemaProblems(err) {
  const list = Array.isArray(err?.errors) && err.errors.length ? err.errors : null;
  if (!list) return [{ path: '', message: String(err?.message || err) }];
  return list.map((e) => {
    if (e.keyword === 'required' && e.params?.missingProperty) {
      return { path: jsonPath(pointerToPath(e.instancePath || ''), e.params.missingProperty), message: 'required field missing' };
    }
    let message = e.message || e.keyword;
    if (e.keyword === 'enum' && e.params?.allowedValues) message = `must be one of ${e.params.allowedValues.join(', ')}`;
    return { path: pointerToPath(e.instancePath || ''), message };
  });
}

function validateObject(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return [{ path: '', message: 'not a mapping (a Kubernetes object is a mapping with apiVersion and kind)' }];
  }
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string' || !apiVersion) return [{ path: 'apiVersion', message: 'required field missing' }];
  if (typeof kind !== 'string' || !kind) return [{ path: 'kind', message: 'required field missing' }];
  if (!KINDS[apiVersion]?.includes(kind)) {
    const known = Object.entries(KINDS).map(([v, ks]) => ks.map((k) => `${v} ${k}`).join(', ')).join(', ');
    return [{ path: '', message: `unknown kind ${apiVersion} ${kind} (this validator knows: ${known})` }];
  }
  const Model = models[apiVersion][kind];
  const problems = [];
  try {
    new Model(obj).validate();
  } catch (err) {
    problems.push(...schemaProblems(err));
  }
  const dts = parseDts(path.join(NM, 'kubernetes-models', MODULE_DIR[apiVersion], `${kind}.d.ts`));
  if (!dts) problems.push({ path: '', message: `cannot read the field list of ${kind} (kubernetes-models install broken?)` });
  else checkFields(obj, dts, '', problems);
  // One problem per path: the schema's and the field check's can coincide.
  const seen = new Set();
  return problems.filter((p) => { const key = `${p.path}\0${p.message}`; if (seen.has(key)) return false; seen.add(key); return true; });
}

function describe(obj) {
  const kind = obj && typeof obj === 'object' && typeof obj.kind === 'string' ? obj.kind : '?';
  const name = obj && typeof obj === 'object' && obj.metadata && typeof obj.metadata.name === 'string' ? obj.metadata.name : '?';
  return `${kind}/${name}`;
}

function readInput(file) {
  return file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
}

let failed = false;
for (const file of files) {
  const label = file === '-' ? '<stdin>' : file;
  let text;
  try { text = readInput(file); } catch (err) {
    console.log(`${label}: cannot read: ${err.message}`); failed = true; continue;
  }
  const lines = [];
  let count = 0;
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true });
  docs.forEach((doc, index) => {
    if (doc.errors.length) {
      for (const e of doc.errors) lines.push(`${label}:doc${index} ?/?: YAML: ${e.message.split('\n')[0]}`);
      return;
    }
    const obj = doc.toJS({ maxAliasCount: 100 });
    if (obj === null || obj === undefined) return; // an empty document (a trailing ---)
    const items = obj && obj.kind === 'List' && (obj.apiVersion === 'v1' || obj.apiVersion === undefined)
      ? (Array.isArray(obj.items) ? obj.items.map((it, j) => [`doc${index}.items[${j}]`, it]) : null)
      : [[`doc${index}`, obj]];
    if (items === null) { lines.push(`${label}:doc${index} List/?: items: must be a list`); return; }
    for (const [where, item] of items) {
      count++;
      for (const p of validateObject(item)) lines.push(`${label}:${where} ${describe(item)}: ${p.path || '(object)'}: ${p.message}`);
    }
  });
  if (lines.length) { failed = true; for (const l of lines) console.log(l); }
  else if (count === 0) { failed = true; console.log(`${label}: no Kubernetes objects`); }
  else console.log(`${label}: ${count} object${count === 1 ? '' : 's'} ok`);
}
process.exit(failed ? 1 : 0);
