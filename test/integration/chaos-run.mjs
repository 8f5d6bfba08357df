// `npm run chaos`: a long chaos run (see chaos.mjs) that prints its accounting.
//   node test/integration/chaos-run.mjs --calls 200 --seconds 60 [--interval 1000]
//     [--transport mixed|websocket|polling] [--early 5] [--redis-down 1000] [--json]
// Exits 1 when a message was lost, duplicated, reordered, refused or never answered.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runChaos, formatResult } from './chaos.mjs';

const { values: v } = parseArgs({
  options: {
    calls: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '60' },
    interval: { type: 'string', default: '1000' },
    transport: { type: 'string', default: 'mixed' },
    early: { type: 'string', default: '5' },
    'redis-down': { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
  },
});
if (!['mixed', 'websocket', 'polling'].includes(v.transport)) {
  console.error(`--transport: mixed, websocket or polling, not ${v.transport}`);
  process.exit(2);
}

const opts = {
  calls: Number(v.calls),
  seconds: Number(v.seconds),
  intervalMs: Number(v.interval),
  transport: /** @type {'mixed' | 'websocket' | 'polling'} */ (v.transport),
  early: Number(v.early),
  redisDownMs: Number(v['redis-down']),
};
console.log(`chaos run: ${opts.calls} calls, ${opts.seconds} s of candidates every ~${opts.intervalMs} ms per peer, `
  + `${opts.transport} transports; instance a is killed at 1/3, Redis restarted at 2/3`);
const r = await runChaos({ ...opts, log: (line) => console.log(`  ${line}`) });
console.log(formatResult(r));
const bad = r.lost + r.duplicated + r.outOfOrder + r.refused + r.unsettled + r.unexpected + r.errors.length;
if (bad) {
  const file = path.join(os.tmpdir(), `switchboard-chaos-${Date.now()}.log`);
  fs.writeFileSync(file, Object.entries(r.logs).map(([id, text]) => `--- instance ${id} ---\n${text}`).join('\n'));
  console.log(`instance logs: ${file}`);
}
if (v.json) {
  const { logs, ...rest } = r;
  console.log(JSON.stringify(rest));
}
// Exit at once: the harness registers node:test hooks that would print an empty test report.
process.exit(bad ? 1 : 0);
