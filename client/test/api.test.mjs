// The public surface: the sources, the built bundles and the shipped declarations agree.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';
import * as api from '../src/index.js';

const EXPORTS = ['Call', 'DATA_CHANNEL_LABEL', 'Emitter', 'PROTOCOL_VERSION', 'SignalingChannel', 'SignalingError', 'Switchboard', 'connect'];
const dist = (/** @type {string} */ f) => new URL(`../dist/${f}`, import.meta.url);

test('the module exports the documented names', () => {
  assert.deepEqual(Object.keys(api).sort(), EXPORTS);
  assert.equal(api.PROTOCOL_VERSION, 1);
  assert.equal(api.DATA_CHANNEL_LABEL, 'switchboard');
});

test('the ES module bundle exports the same names', async () => {
  const bundle = await import(dist('switchboard.js').href);
  assert.deepEqual(Object.keys(bundle).sort(), EXPORTS);
});

test('the classic script defines the global Switchboard with the same names', () => {
  const context = vm.createContext({});
  vm.runInContext(fs.readFileSync(dist('switchboard.iife.js'), 'utf8'), context);
  assert.deepEqual(Object.keys(context.Switchboard).sort(), EXPORTS);
  assert.equal(typeof context.Switchboard.connect, 'function');
});

test('the declarations declare every export', () => {
  const dts = fs.readFileSync(dist('switchboard.d.ts'), 'utf8');
  assert.match(dts, /^export as namespace Switchboard;$/m);
  for (const name of EXPORTS) {
    assert.match(dts, new RegExp(`^export (const|class|function) ${name}\\b`, 'm'), name);
  }
});
