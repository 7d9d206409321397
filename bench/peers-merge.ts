/**
 * Merges the `--json` output of separate `bench --peers` runs (e.g. one per runtime, run one after
 * the other to keep each under the time budget) into one markdown report and one chart, exactly as a
 * single `--runtime both` run would print them.
 *
 *   node scripts/run-ts.mjs bench/peers-merge.ts CHART.png RUN1.json [RUN2.json …]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { PeersResult } from './peers-bench';
import { renderPeersChart, renderPeersTables } from './peers-report';

const [chart, ...inputs] = process.argv.slice(2);
if (!chart || inputs.length === 0) {
  console.error('usage: node scripts/run-ts.mjs bench/peers-merge.ts CHART.png RUN1.json [RUN2.json …]');
  process.exit(2);
}
const results: PeersResult[] = [];
const commands: string[] = [];
for (const f of inputs) {
  // The last line of a --json run is the result object (earlier lines, if any, are not).
  const last = readFileSync(f, 'utf8').trim().split('\n').pop() ?? '';
  const j = JSON.parse(last) as { type?: string; command?: string; results?: PeersResult[] };
  if (j.type !== 'peers' || !Array.isArray(j.results)) throw new Error(`${f}: not the JSON of bench --peers`);
  results.push(...j.results);
  if (j.command) commands.push(j.command);
}
writeFileSync(chart, renderPeersChart(results));
console.log(renderPeersTables(results, commands.join('` then `')));
