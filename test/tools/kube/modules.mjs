// Where the packages that npm-install.sh installed are: --modules DIR,
// $OUTRIGGER_KUBE_VALIDATE_DIR, each $NODE_PATH entry, this directory, then
// $HOME/.cache/outrigger-kube-validate. Each may be an install directory (with
// node_modules/) or a node_modules directory. ES modules ignore NODE_PATH, so the
// scripts import the packages by file path from the directory found here.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export function findNodeModules(explicit, who) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    explicit,
    process.env.OUTRIGGER_KUBE_VALIDATE_DIR,
    ...(process.env.NODE_PATH || '').split(path.delimiter),
    here,
    path.join(process.env.HOME || '/root', '.cache', 'outrigger-kube-validate'),
  ].filter(Boolean);
  for (const c of candidates) {
    for (const nm of [path.join(c, 'node_modules'), c]) {
      if (fs.existsSync(path.join(nm, 'kubernetes-models', 'package.json'))
          && fs.existsSync(path.join(nm, 'yaml', 'package.json'))) return nm;
    }
  }
  process.stderr.write(`${who}: kubernetes-models and yaml are not installed; run `
    + 'test/tools/kube/npm-install.sh [DIR] and pass --modules DIR (looked in: '
    + `${candidates.join(', ')})\n`);
  process.exit(2);
}

export function loadModule(nodeModules, rel) {
  return import(pathToFileURL(path.join(nodeModules, rel)).href);
}
