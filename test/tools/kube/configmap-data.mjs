#!/usr/bin/env node
// Prints one data key of one ConfigMap in a (multi-document) manifest file, so that
// a config embedded in a ConfigMap can be checked by its own tool (promtool, outrigger validate).
// usage: node configmap-data.mjs [--modules DIR] FILE NAME KEY      (FILE "-" is stdin)
// Exit 1 when the file has no ConfigMap NAME with that key.
import fs from 'node:fs';
import { findNodeModules, loadModule } from './modules.mjs';

const args = process.argv.slice(2);
let modules = null;
if (args[0] === '--modules') { modules = args[1]; args.splice(0, 2); }
if (args.length !== 3) {
  process.stderr.write('usage: node configmap-data.mjs [--modules DIR] FILE NAME KEY\n');
  process.exit(2);
}
const [file, name, key] = args;
const YAML = await loadModule(findNodeModules(modules, 'configmap-data.mjs'), 'yaml/dist/index.js');
const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
for (const doc of YAML.parseAllDocuments(text)) {
  if (doc.errors.length) { process.stderr.write(`${file}: ${doc.errors[0].message}\n`); process.exit(1); }
  const o = doc.toJS();
  if (o && o.kind === 'ConfigMap' && o.metadata?.name === name && typeof o.data?.[key] === 'string') {
    process.stdout.write(o.data[key]);
    process.exit(0);
  }
}
process.stderr.write(`${file}: no ConfigMap '${name}' with data key '${key}'\n`);
process.exit(1);
