/**
 * What `bench --peers` / `--profile` print: the markdown tables (one column pair per runtime), the
 * issue 10 targets marked met or not from the figures of this run, the JSON object, and a PNG bar
 * chart. Pure functions of PeersResult (tested in tests/bench-peers.test.ts without a GPU).
 */
import { Canvas, type RGBA } from '../io/plot';
import { encodePng } from '../io/png';
import type { CaseResult, PeersResult } from './peers-bench';

const RT = { node: 'Node + Dawn', browser: 'Chromium' } as const;
const f2 = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const cnt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/**
 * Issue 10's targets, as ratios of this run: wgflow's best level ÷ jax-js; flows dispatches per step
 * and speed-up over `layer`; fused RK4 over `ops` where dispatch-bound (n ≤ 1 024) and its GFLOP/s
 * over the best matmul of this run where compute-bound; the OT-CFM step next to PyTorch's (a figure
 * to report, not a target).
 */
export const TARGETS = { mlpTimeVsJax: 0.25, matmul1024VsJax: 3, flowDispatches: 40, flowVsLayer: 3, rk4VsOps: 10, rk4VsMatmul: 0.7, dispatchBoundN: 1024, torchOtStepMs: 7.4 } as const;

function engines(results: PeersResult[], kind: 'matmul' | 'mlp'): string[] {
  const seen: string[] = [];
  for (const r of results) for (const c of r.cases) if (c.kind === kind && !seen.includes(label(c))) seen.push(label(c));
  return seen;
}

/** matmul is the same kernel at every fusion level: one 'wgflow' row. */
function label(c: CaseResult): string {
  return c.kind === 'matmul' && c.family === 'wgflow' ? 'wgflow' : c.engine;
}

function find(r: PeersResult, workload: string, eng: string): CaseResult | undefined {
  return r.cases.find((c) => c.workload === workload && label(c) === eng);
}

/** wgflow's fastest level for a workload (the one the targets are judged on). */
export function bestWgflow(r: PeersResult, workload: string): CaseResult | undefined {
  return r.cases.filter((c) => c.workload === workload && c.family === 'wgflow' && c.ok).sort((a, b) => a.ms - b.ms)[0];
}

export interface TargetCheck {
  runtime: 'node' | 'browser';
  target: string;
  wgflow: string;
  ratio: number | null;
  met: boolean | null;
}

export function targetChecks(results: PeersResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const r of results) {
    const jax = (w: string) => r.cases.find((c) => c.workload === w && c.family === 'jax-js' && c.ok);
    for (const w of [...new Set(r.cases.filter((c) => c.kind === 'mlp').map((c) => c.workload))]) {
      const best = bestWgflow(r, w);
      const j = jax(w);
      const ratio = best && j ? best.ms / j.ms : null;
      out.push({ runtime: r.runtime, target: `${w}: step time ≤ ${TARGETS.mlpTimeVsJax}× jax-js`, wgflow: best?.engine ?? '–', ratio, met: ratio === null ? null : ratio <= TARGETS.mlpTimeVsJax });
    }
    const w = 'matmul 1024';
    const best = bestWgflow(r, w);
    const j = jax(w);
    if (best || j) {
      const ratio = best && j ? best.gflops! / j.gflops! : null;
      out.push({ runtime: r.runtime, target: `matmul 1024³: GFLOP/s ≥ ${TARGETS.matmul1024VsJax}× jax-js`, wgflow: 'wgflow', ratio, met: ratio === null ? null : ratio >= TARGETS.matmul1024VsJax });
    }
    if (r.targets) out.push(...engineTargetChecks(r));
  }
  return out;
}

/** The best wgflow matmul GFLOP/s of this run (any size). */
function bestMatmulGflops(r: PeersResult): number | null {
  const g = r.cases.filter((c) => c.kind === 'matmul' && c.family === 'wgflow' && c.ok && c.gflops !== null).map((c) => c.gflops!);
  return g.length ? Math.max(...g) : null;
}

function engineTargetChecks(r: PeersResult): TargetCheck[] {
  const t = r.targets!;
  const out: TargetCheck[] = [];
  const rt = r.runtime;
  for (const model of [...new Set(t.flows.map((f) => f.model))]) {
    const rows = t.flows.filter((f) => f.model === model);
    const best = [...rows].sort((a, b) => a.dispatchesPerStep - b.dispatchesPerStep)[0]!;
    out.push({ runtime: rt, target: `${model} training step: ≤ ${TARGETS.flowDispatches} dispatches`, wgflow: `wgflow ${best.level}`, ratio: best.dispatchesPerStep, met: best.dispatchesPerStep <= TARGETS.flowDispatches });
    // The speed-up is the fused level's (fewest dispatches) over `layer`.
    const layer = rows.find((f) => f.level === 'layer');
    const ratio = layer && best !== layer ? layer.ms / best.ms : null;
    out.push({ runtime: rt, target: `${model} training step: ≥ ${TARGETS.flowVsLayer}× faster than layer`, wgflow: `wgflow ${best.level}`, ratio, met: ratio === null ? null : ratio >= TARGETS.flowVsLayer });
  }
  const matmul = bestMatmulGflops(r);
  for (const n of [...new Set(t.sampling.map((s) => s.n))]) {
    const fused = t.sampling.find((s) => s.n === n && s.level === 'step');
    const ops = t.sampling.find((s) => s.n === n && s.level === 'ops');
    if (n <= TARGETS.dispatchBoundN) {
      const ratio = fused && ops ? ops.ms / fused.ms : null;
      out.push({ runtime: rt, target: `RK4 n=${n}: fused ≥ ${TARGETS.rk4VsOps}× ops`, wgflow: 'wgflow step', ratio, met: ratio === null ? null : ratio >= TARGETS.rk4VsOps });
    } else {
      const ratio = fused && matmul ? fused.gflops / matmul : null;
      out.push({ runtime: rt, target: `RK4 n=${n}: fused GFLOP/s ≥ ${TARGETS.rk4VsMatmul}× best matmul`, wgflow: 'wgflow step', ratio, met: ratio === null ? null : ratio >= TARGETS.rk4VsMatmul });
    }
  }
  if (t.ot) out.push({ runtime: rt, target: `OT-CFM exact step, batch ${t.ot.batch}: ms ÷ PyTorch's ${TARGETS.torchOtStepMs} ms (report)`, wgflow: `wgflow ${t.ot.fusion}`, ratio: t.ot.pipelinedMs / TARGETS.torchOtStepMs, met: null });
  return out;
}

function renderEngineTargets(rts: PeersResult[], out: string[]): void {
  const withT = rts.filter((r) => r.targets);
  if (!withT.length) return;
  const flowKeys = [...new Set(withT.flatMap((r) => r.targets!.flows.map((f) => `${f.model}|${f.level}`)))];
  if (flowKeys.length) {
    out.push('### Flows training step (2-D, batch 256, conditioners [64, 64] ReLU), ms (dispatches per step; −mean log p after the run)', '');
    out.push(`| model | fusion | ${withT.map((r) => RT[r.runtime]).join(' | ')} |`, `|---|---|${withT.map(() => '---').join('|')}|`);
    for (const k of flowKeys) {
      const [model, level] = k.split('|');
      const cells = withT.map((r) => {
        const f = r.targets!.flows.find((x) => x.model === model && x.level === level);
        return f ? `${f2(f.ms)} (${cnt(f.dispatchesPerStep)}; ${f.loss.toFixed(4)})` : '–';
      });
      out.push(`| ${model} | ${level} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  const sKeys = [...new Set(withT.flatMap((r) => r.targets!.sampling.map((s) => `${s.n}|${s.level}`)))];
  if (sKeys.length) {
    out.push('### RK4 sampling, default vector field, 100 steps: ms (dispatches; GFLOP/s; max |Δ| vs fused)', '');
    out.push(`| n | fusion | ${withT.map((r) => RT[r.runtime]).join(' | ')} |`, `|---|---|${withT.map(() => '---').join('|')}|`);
    for (const k of sKeys) {
      const [n, level] = k.split('|');
      const cells = withT.map((r) => {
        const s = r.targets!.sampling.find((x) => String(x.n) === n && x.level === level);
        return s ? `${f2(s.ms)} (${s.dispatches}; ${f2(s.gflops)}; ${s.maxAbsDiff.toExponential(1)})` : '–';
      });
      out.push(`| ${n} | ${level} | ${cells.join(' | ')} |`);
    }
    out.push(`| best matmul GFLOP/s (this run) | | ${withT.map((r) => f2(bestMatmulGflops(r))).join(' | ')} |`, '');
  }
  const ots = withT.filter((r) => r.targets!.ot);
  if (ots.length) {
    out.push(`### OT-CFM exact-OT training step, batch 256 (PyTorch on 2 CPU cores, SPEC §5.1: ${TARGETS.torchOtStepMs} ms)`, '');
    out.push('| runtime | pipelined ms | CPU part (batch + assignment) ms | GPU alone ms | dispatches / submits |', '|---|---|---|---|---|');
    for (const r of ots) {
      const o = r.targets!.ot!;
      out.push(`| ${RT[r.runtime]} | ${f2(o.pipelinedMs)} | ${f2(o.cpuMs)} | ${f2(o.gpuMs)} | ${cnt(o.dispatchesPerStep)} / ${cnt(o.submitsPerStep)} |`);
    }
    out.push('', 'The pipelined step is bounded by the larger of its two parts: the CPU part (the exact assignment) runs while the GPU computes the previous step.', '');
  }
}

export function renderPeersTables(results: PeersResult[], command = ''): string {
  const out: string[] = [];
  if (command) out.push(`\`${command}\``, '');
  for (const r of results) out.push(`- ${RT[r.runtime]}: ${r.adapterSummary} — ${r.userAgent}; wgflow fusion: ${r.fusionApi}; ${r.options.reps} timed rounds (medians), engines interleaved`);
  out.push('');
  const rts = results;
  const sizes = [...new Set(rts.flatMap((r) => r.cases.filter((c) => c.kind === 'matmul').map((c) => c.size!)))];
  if (sizes.length) {
    out.push('### matmul f32 n³, GFLOP/s (dispatches / submits per product)', '');
    const head = ['engine', ...sizes.flatMap((s) => rts.map((r) => `${s}³ ${RT[r.runtime]}`))];
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const e of engines(rts, 'matmul')) {
      const cells = sizes.flatMap((s) =>
        rts.map((r) => {
          const c = find(r, `matmul ${s}`, e);
          return c ? `${f2(c.gflops)} (${cnt(c.dispatchesPerUnit)} / ${cnt(c.submitsPerUnit)})${c.ok ? '' : ' ✗numerics'}` : '–';
        }),
      );
      out.push(`| ${e} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  const mlpW = [...new Set(rts.flatMap((r) => r.cases.filter((c) => c.kind === 'mlp').map((c) => c.workload)))];
  if (mlpW.length) {
    out.push('### MLP 3→64→64→64→2 + MSE + Adam training step, ms (dispatches / submits per step)', '');
    const head = ['engine', ...mlpW.flatMap((w) => rts.map((r) => `${w.replace('mlp ', '')} ${RT[r.runtime]}`))];
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const e of engines(rts, 'mlp')) {
      const cells = mlpW.flatMap((w) =>
        rts.map((r) => {
          const c = find(r, w, e);
          return c ? `${f2(c.ms)} (${cnt(c.dispatchesPerUnit)} / ${cnt(c.submitsPerUnit)})${c.ok ? '' : ' ✗numerics'}` : '–';
        }),
      );
      out.push(`| ${e} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  renderEngineTargets(rts, out);
  const checks = targetChecks(rts);
  if (checks.length) {
    out.push('### Issue 10 targets (from the figures of this run)', '', '| runtime | target | wgflow | figure | met |', '|---|---|---|---|---|');
    for (const t of checks) out.push(`| ${RT[t.runtime]} | ${t.target} | ${t.wgflow} | ${t.ratio === null ? '–' : t.target.includes('dispatches') ? cnt(t.ratio) : t.ratio.toFixed(2) + '×'} | ${t.met === null ? '–' : t.met ? 'yes' : 'no'} |`);
    out.push('');
  }
  for (const r of rts) {
    if (!r.profile.length) continue;
    out.push(`### Per-kernel GPU time of one training step (timestamp queries, median of ${r.options.profileReps} replays, ms), ${RT[r.runtime]}`, '');
    for (const p of r.profile) {
      out.push(`${p.level}, batch ${p.batch}, ${p.act}: ${p.kernels.length} dispatches, ${f2(p.totalMs)} ms in kernels`, '', '| # | kernel | workgroups | ms |', '|---|---|---|---|');
      for (const k of p.kernels) out.push(`| ${k.index + 1} | ${k.kernel} | ${k.workgroups.join('×')} | ${k.ms.toFixed(3)} |`);
      out.push('');
    }
  }
  const errs = rts.flatMap((r) => r.errors.map((e) => `${RT[r.runtime]}: ${e}`));
  if (errs.length) out.push('Not measured:', '', ...errs.map((e) => `- ${e.split('\n')[0]}`), '');
  return out.join('\n');
}

/** The `--json` result object (one line). */
export function peersJson(results: PeersResult[], command: string, chart: string | null): object {
  return { type: 'peers', command, chart, targets: targetChecks(results), results };
}

// ---- chart ----

// Capital letters and a few signs for labels, 5×7, most significant bit leftmost (io/plot's font has digits only).
const GLYPHS: Record<string, number[]> = {
  A: [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11], B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e], C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
  D: [0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e], E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f], F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f], H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11], I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c], K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11], N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10], Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d], R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e], T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
  V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04], W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a], X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04], Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f], '/': [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
  ':': [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0], '(': [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], ')': [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e], '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e], '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e], '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02], '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e], '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c], '.': [0, 0, 0, 0, 0, 0x0c, 0x0c], '-': [0, 0, 0, 0x1f, 0, 0, 0], '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0], '×': [0, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0],
};

function text(c: Canvas, x: number, y: number, s: string, color: RGBA): void {
  const up = s.toUpperCase();
  for (let k = 0; k < up.length; k++) {
    const g = GLYPHS[up[k]!];
    if (!g) continue;
    for (let r = 0; r < 7; r++) for (let col = 0; col < 5; col++) if (g[r]! & (0x10 >> col)) c.blend(x + 6 * k + col, y + r, color);
  }
}

// wgflow's levels in blues (darker = more fused; matmul, one kernel at every level, darkest), jax-js orange, tfjs green.
const BLUES: RGBA[] = [[158, 202, 225, 255], [107, 174, 214, 255], [49, 130, 189, 255], [8, 81, 156, 255], [8, 48, 107, 255]];
const FAMILY: Record<CaseResult['family'], RGBA> = { wgflow: BLUES[2]!, 'jax-js': [255, 127, 14, 255], tfjs: [44, 160, 44, 255] };
const INK: RGBA = [40, 40, 40, 255];
const GRID: RGBA = [225, 225, 225, 255];

/**
 * One row per runtime, two panels: matmul GFLOP/s (higher is better) and MLP step ms (lower is
 * better), each a group of bars per workload, one colour per engine, log-scale y (the engines span
 * two orders of magnitude), decades marked. Returns PNG bytes.
 */
export function renderPeersChart(results: PeersResult[]): Uint8Array {
  const order = { wgflow: 0, 'jax-js': 1, tfjs: 2 } as const;
  const all = results.flatMap((r) => r.cases).sort((a, b) => order[a.family] - order[b.family]);
  const engs = [...new Set(all.map(label))];
  const fam = new Map(all.map((c) => [label(c), c.family]));
  const levels = engs.filter((e) => e !== 'wgflow' && fam.get(e) === 'wgflow');
  const colour = (e: string): RGBA => (e === 'wgflow' ? BLUES[BLUES.length - 1]! : fam.get(e) === 'wgflow' ? BLUES[Math.min(BLUES.length - 1, levels.indexOf(e))]! : FAMILY[fam.get(e)!]);
  const W = 1400, rowH = 330, legendH = 24 + 14 * Math.ceil(engs.length / 3);
  const H = legendH + rowH * Math.max(1, results.length);
  const c = new Canvas(W, H);
  engs.forEach((e, i) => {
    const x = 20 + (i % 3) * 440, y = 10 + 14 * Math.floor(i / 3);
    c.fillRect(x, y, x + 10, y + 8, colour(e));
    text(c, x + 16, y + 1, e, INK);
  });
  results.forEach((r, ri) => {
    const top = legendH + ri * rowH;
    const panels: { title: string; kind: 'matmul' | 'mlp'; value: (x: CaseResult) => number }[] = [
      { title: `${RT[r.runtime]}: matmul GFLOP/s (log)`, kind: 'matmul', value: (x) => x.gflops ?? NaN },
      { title: `${RT[r.runtime]}: MLP step ms (log)`, kind: 'mlp', value: (x) => x.ms },
    ];
    panels.forEach((p, pi) => {
      const x0 = 60 + pi * (W / 2), x1 = (pi + 1) * (W / 2) - 20, y0 = top + 24, y1 = top + rowH - 40;
      text(c, x0, top + 6, p.title, INK);
      const cases = r.cases.filter((x) => x.kind === p.kind && Number.isFinite(p.value(x)) && p.value(x) > 0);
      if (!cases.length) return;
      const vals = cases.map(p.value);
      const lo = Math.floor(Math.log10(Math.min(...vals)));
      const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...vals)) - 1e-9));
      const yOf = (v: number) => y1 - ((Math.log10(v) - lo) / (hi - lo)) * (y1 - y0);
      for (let d = lo; d <= hi; d++) {
        const y = Math.round(yOf(10 ** d));
        c.fillRect(x0, y, x1, y, GRID);
        const t = d >= 0 ? String(10 ** d) : (10 ** d).toFixed(-d);
        text(c, x0 - 6 * t.length - 4, y - 3, t, INK);
      }
      const groups = [...new Set(cases.map((x) => x.workload))];
      const gw = (x1 - x0) / groups.length;
      groups.forEach((g, gi) => {
        const inG = engs.map((e) => cases.find((x) => x.workload === g && label(x) === e)).filter((x): x is CaseResult => !!x);
        const bw = Math.max(2, Math.floor((gw - 16) / Math.max(1, inG.length)));
        inG.forEach((x, k) => {
          const bx = Math.round(x0 + gi * gw + 8 + k * bw);
          c.fillRect(bx, Math.round(yOf(p.value(x))), bx + bw - 2, y1, colour(label(x)));
        });
        const name = g.replace('matmul ', '').replace('mlp ', 'B').replace(/^B(\w+) (\d+)$/, '$1 B$2');
        text(c, Math.round(x0 + gi * gw + gw / 2 - (6 * name.length) / 2), y1 + 8, name, INK);
      });
      c.fillRect(x0, y1, x1, y1, INK);
    });
  });
  return encodePng(W, H, c.rgba);
}
