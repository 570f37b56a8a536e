#!/usr/bin/env node
// Prints one data key of one ConfigMap in a (multi-document) manifest file, so that
// a config embedded in a ConfigMap can be checked by its own tool (promtool, outrigger validate).
// usage: node configmap-data.mjs [--modules DIR] FILE NAME KEY      (FILE "-" is stdin)
//        node configmap-data.mjs [--modules DIR] --list FILE KEY    (the names of the ConfigMaps with KEY)
// Exit 1 when the file has no ConfigMap NAME with that key (with --list: none with it).
import fs from 'node:fs';
import { findNodeModules, loadModule } from './modules.mjs';

const args = process.argv.slice(2);
let modules = null;
if (args[0] === '--modules') { modules = args[1]; args.splice(0, 2); }
const list = args[0] === '--list';
if (list) args.splice(0, 1, null);
if (args.length !== 3) {
  process.stderr.write('usage: node configmap-data.mjs [--modules DIR] FILE NAME KEY | --list FILE KEY\n');
  process.exit(2);
}
const [file, name, key] = list ? [args[1], null, args[2]] : args;
const YAML = await loadModule(findNodeModules(modules, 'configmap-data.mjs'), 'yaml/dist/index.js');
const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
let found = false;
for (const doc of YAML.parseAllDocuments(text)) {
  if (doc.errors.length) { process.stderr.write(`${file}: ${doc.errors[0].message}\n`); process.exit(1); }
  const o = doc.toJS();
  if (list) {
    if (o && o.kind === 'ConfigMap' && typeof o.data?.[key] === 'string') { console.log(o.metadata?.name); found = true; }
    continue;
  }
  if (o && o.kind === 'ConfigMap' && o.metadata?.name === name && typeof o.data?.[key] === 'string') {
    process.stdout.write(o.data[key]);
    process.exit(0);
  }
}
if (list && found) process.exit(0);
process.stderr.write(list ? `${file}: no ConfigMap with data key '${key}'\n` : `${file}: no ConfigMap '${name}' with data key '${key}'\n`);
process.exit(1);
