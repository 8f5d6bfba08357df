// Builds the browser client into client/dist (committed, embedded by the Go server):
//   switchboard.js       ES module
//   switchboard.iife.js  classic <script>, global `Switchboard`
//   switchboard.d.ts     types (copied from src/switchboard.d.ts)
//
//   node client/build.mjs          rebuild client/dist
//   node client/build.mjs --check  rebuild into a temporary directory and fail when client/dist
//                                  differs (stale or edited by hand)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const CLIENT = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(CLIENT, 'dist');
const ENTRY = path.join(CLIENT, 'src', 'index.js');
const TYPES = path.join(CLIENT, 'src', 'switchboard.d.ts');

const banner = `/* Switchboard client (socket.io-client bundled: MIT). Built by client/build.mjs from client/src; do not edit. */`;

/** @param {string} outDir @returns {Promise<string[]>} the files written */
async function build(outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  /** @type {import('esbuild').BuildOptions} */
  const common = {
    entryPoints: [ENTRY],
    absWorkingDir: CLIENT,
    bundle: true,
    minify: true,
    platform: 'browser',
    target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
    legalComments: 'none',
    banner: { js: banner },
    logLevel: 'warning',
  };
  await esbuild.build({ ...common, format: 'esm', outfile: path.join(outDir, 'switchboard.js') });
  await esbuild.build({
    ...common, format: 'iife', globalName: 'Switchboard', outfile: path.join(outDir, 'switchboard.iife.js'),
  });
  fs.copyFileSync(TYPES, path.join(outDir, 'switchboard.d.ts'));
  return ['switchboard.js', 'switchboard.iife.js', 'switchboard.d.ts'];
}

if (process.argv.includes('--check')) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-dist-'));
  try {
    const files = await build(tmp);
    const stale = [];
    for (const f of files) {
      const want = fs.readFileSync(path.join(tmp, f));
      let have = null;
      try { have = fs.readFileSync(path.join(DIST, f)); } catch { /* missing */ }
      if (!have || !want.equals(have)) stale.push(f);
    }
    const extra = fs.existsSync(DIST) ? fs.readdirSync(DIST).filter((f) => !files.includes(f)) : [];
    if (stale.length || extra.length) {
      if (stale.length) console.error(`client/dist is stale: ${stale.join(', ')} differ from a fresh build of client/src.`);
      if (extra.length) console.error(`client/dist has files the build does not make: ${extra.join(', ')}.`);
      console.error('Run `npm run build:client` and commit client/dist.');
      process.exitCode = 1;
    } else {
      console.log(`client/dist is up to date (${files.join(', ')}).`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const files = await build(DIST);
  for (const f of files) console.log(`client/dist/${f}  ${fs.statSync(path.join(DIST, f)).size} bytes`);
}
