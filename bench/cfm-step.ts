/**
 * Training-step cost (SPEC §6): the CPU part (sampling + exact OT), the GPU step alone, and the
 * whole pipelined step, at batch 256 by default; dispatches and submits per step.
 *
 * Run: node scripts/run-ts.mjs bench/cfm-step.ts [--batch 256] [--steps 200] [--mode fused|tape] [--ot exact|sinkhorn|none]
 */
import type { TrainConfig } from '../train/contract';
import { getBackend, init } from '../engine';
import { Rng } from '../engine/philox';
import { sourceSampler, stepBatch, targetSampler } from '../cfm/train';
import { resolveConfig } from '../cfm/config';
import { VectorField } from '../cfm/mlp';
import { CfmStepper } from '../cfm/step';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => (args.indexOf(`--${n}`) >= 0 ? args[args.indexOf(`--${n}`) + 1]! : d);
const batch = Number(arg('batch', '256'));
const steps = Number(arg('steps', '200'));
const mode = arg('mode', 'fused') as 'fused' | 'tape';
const ot = arg('ot', 'exact');
const S = Number(arg('spt', '8'));
const b = await init({ runtime: 'node' });
const cfg: TrainConfig = { method: ot === 'none' ? 'icfm' : 'otcfm', source: '8gaussians', target: 'moons', steps, batch, lr: 1e-3, seed: 0, options: { ...(ot === 'none' ? {} : { ot }), step: mode } };
const c = resolveConfig(cfg);
const src = sourceSampler(c), tgt = targetSampler(c);
const vf = new VectorField({ dim: 2, hidden: c.hidden, activation: c.activation }, new Rng(0));
const st = new CfmStepper(vf, { method: c.method, sigma: c.sigma, batch, seed: 0, mode, samplesPerThread: S, adam: { lr: 1e-3 }, sinkhorn: c.coupling === 'sinkhorn' ? { opts: { reg: c.reg!, maxIter: c.sinkhornMaxIter, tol: c.sinkhornTol }, pairing: c.pairing } : undefined });
// CPU part
let t0 = performance.now();
const batches: Float32Array[] = [];
for (let s = 0; s < steps; s++) batches.push(stepBatch(c, s, src, tgt));
const cpuMs = (performance.now() - t0) / steps;
// GPU alone (batches prepared)
st.step(batches[0]!, 0);
await b.sync();
const d0 = b.counters.dispatches, s0 = b.counters.submits, r0 = b.counters.readbacks;
const live0 = b.counters.bytesLive, created0 = b.counters.buffersCreated;
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
t0 = performance.now();
let c0 = cpuNow();
for (let s = 1; s < steps; s++) st.step(batches[s]!, s);
b.flush();
await new Promise((r) => setTimeout(r, 5));
await b.sync();
const gpuMs = (performance.now() - t0) / (steps - 1);
const gpuCpuMs = (cpuNow() - c0) / (steps - 1);
const disp = (b.counters.dispatches - d0) / (steps - 1), subm = (b.counters.submits - s0) / (steps - 1), rb = b.counters.readbacks - r0;
// Whole step, pipelined as in training
t0 = performance.now();
c0 = cpuNow();
for (let s = 0; s < steps; s++) st.step(stepBatch(c, s, src, tgt), s);
await b.sync();
const allMs = (performance.now() - t0) / steps;
const allCpuMs = (cpuNow() - c0) / steps;
const memory = { bytesLiveAfterWarmup: live0, bytesLiveAtEnd: b.counters.bytesLive, buffersCreatedSinceWarmup: b.counters.buffersCreated - created0 };
console.log(JSON.stringify({ batch, mode, ot, samplesPerThread: S, cpuMsPerStep: +cpuMs.toFixed(2), gpuMsPerStep: +gpuMs.toFixed(2), gpuProcessCpuMsPerStep: +gpuCpuMs.toFixed(2), pipelinedMsPerStep: +allMs.toFixed(2), pipelinedProcessCpuMsPerStep: +allCpuMs.toFixed(2), load: (await import('node:os')).loadavg()[0], dispatchesPerStep: disp, submitsPerStep: subm, readbacksInLoop: rb, memory, loss: (await st.readLosses(steps - 5, steps)).join(' ') }));
process.exit(0);
