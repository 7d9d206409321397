/**
 * `bench --peers` / `--profile` pieces that can be checked cheaply (issue 10 items 6 and 7): the
 * WebGPU dispatch/submit counter against known counts, the timestamp capture/replay, the tables,
 * targets, JSON and chart from a hand-made result, and that jax-js and tfjs compute the same matmul
 * and the same training trajectory as wgflow at tiny sizes (so the benchmark times real work).
 * No timing is asserted.
 */
import { describe, expect, it } from 'vitest';
import { matmul, tensor } from '../engine';
import { decodePngSize } from '../io/png';
import { installGpuCounter } from '../bench/gpu-count';
import { captureDispatches, timeDispatches } from '../bench/gpu-profile';
import { installNodeNavigatorGpu, loadTfjsForNode } from '../bench/peer-env';
import { LOSS_TOL, MATMUL_TOL, runPeersBench, type CaseResult, type PeersResult } from '../bench/peers-bench';
import { peersJson, renderPeersChart, renderPeersTables, targetChecks } from '../bench/peers-report';
import { gpu } from './helpers';

/** A pipeline that adds 1 to each element of a 64-float buffer, and that buffer. */
function trivialPipeline(device: GPUDevice) {
  const module = device.createShaderModule({ code: '@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3u) { a[i.x] += 1.0; }' });
  const pipeline = device.createComputePipeline({ label: 'plus_one', layout: 'auto', compute: { module, entryPoint: 'main' } });
  const buf = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] });
  return { pipeline, group, buf };
}

describe('dispatch and submit counter', () => {
  it('counts raw WebGPU dispatches (direct and indirect) and submits, and stops counting when uninstalled', async () => {
    const b = await gpu();
    const d = b.device;
    const { pipeline, group } = trivialPipeline(d);
    const args = d.createBuffer({ size: 12, usage: GPUBufferUsage.INDIRECT | GPUBufferUsage.COPY_DST });
    d.queue.writeBuffer(args, 0, new Uint32Array([1, 1, 1]));
    const counter = installGpuCounter();
    const c0 = counter.read();
    for (let s = 0; s < 2; s++) {
      const enc = d.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      for (let i = 0; i < 3; i++) pass.dispatchWorkgroups(1);
      pass.dispatchWorkgroupsIndirect(args, 0);
      pass.end();
      d.queue.submit([enc.finish()]);
    }
    expect(counter.since(c0)).toEqual({ dispatches: 8, indirect: 2, submits: 2 });
    counter.uninstall();
    const enc = d.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(1);
    pass.end();
    d.queue.submit([enc.finish()]);
    expect(counter.since(c0)).toEqual({ dispatches: 8, indirect: 2, submits: 2 });
    await d.queue.onSubmittedWorkDone();
  });

  it("agrees with wgflow's own counters on engine work (5 matmuls, one flush)", async () => {
    const b = await gpu();
    const A = tensor(new Float32Array(64 * 64).fill(0.5), [64, 64]);
    b.flush();
    const counter = installGpuCounter();
    try {
      const c0 = counter.read();
      const e0 = { ...b.counters };
      const outs = Array.from({ length: 5 }, () => matmul(A, A));
      b.flush();
      const c = counter.since(c0);
      expect(c).toEqual({ dispatches: b.counters.dispatches - e0.dispatches, indirect: 0, submits: b.counters.submits - e0.submits });
      expect(c.dispatches).toBe(5);
      expect(c.submits).toBe(1);
      for (const o of outs) o.dispose();
    } finally {
      counter.uninstall();
      A.dispose();
    }
  });
});

describe('timestamp profile', () => {
  it('captures the dispatches of a step and replays each with its own GPU time', async () => {
    const b = await gpu();
    const { pipeline, group, buf } = trivialPipeline(b.device);
    const { dispatches } = captureDispatches(() => {
      const enc = b.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(1);
      pass.dispatchWorkgroups(1, 1);
      pass.end();
      b.device.queue.submit([enc.finish()]);
    });
    expect(dispatches.map((x) => [x.label, x.workgroups])).toEqual([['plus_one', [1, 1, 1]], ['plus_one', [1, 1, 1]]]);
    if (!b.device.features.has('timestamp-query')) return; // SwiftShader has it; a GPU without it skips the replay.
    const times = await timeDispatches(b.device, dispatches, 2);
    expect(times.map((t) => t.kernel)).toEqual(['plus_one', 'plus_one']);
    for (const t of times) {
      expect(t.samples).toHaveLength(2);
      expect(t.ms).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(t.ms)).toBe(true);
    }
    // The replay really ran the captured work: 2 captured + 2 × 2 replayed additions of 1.
    const staging = b.device.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = b.device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, 0, staging, 0, 256);
    b.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    expect(new Float32Array(staging.getMappedRange().slice(0))[0]).toBe(6);
    staging.unmap();
  });
});

const mk = (engine: string, family: CaseResult['family'], workload: string, ms: number, extra: Partial<CaseResult> = {}): CaseResult => {
  const mm = workload.startsWith('matmul');
  const size = mm ? Number(workload.split(' ')[1]) : null;
  return {
    workload, kind: mm ? 'matmul' : 'mlp', size, batch: mm ? null : Number(workload.split(' ')[2]), act: mm ? null : (workload.split(' ')[1] as 'silu'),
    engine, family, ms, samples: [ms], units: 1, gflops: size ? (2 * size ** 3) / (ms * 1e6) : null,
    dispatchesPerUnit: 3, submitsPerUnit: 1, diff: null, loss: mm ? null : 0.5, ok: true, ...extra,
  };
};

function fakeResult(): PeersResult {
  return {
    runtime: 'browser', adapterSummary: 'google swiftshader (software, browser)', userAgent: 'UA', timestampQuery: true,
    fusionApi: 'setFusion(level)', levels: ['ops', 'layer'],
    options: { sizes: [1024], batches: [256], acts: ['silu'], reps: 3, steps: 10, warmupSteps: 3, targetRepMs: 500, peers: ['jax-js', 'tfjs'], sections: ['peers'], profileReps: 5, targets: {} },
    cases: [
      mk('wgflow ops', 'wgflow', 'matmul 1024', 400),
      mk('jax-js 0.1.25', 'jax-js', 'matmul 1024', 1000),
      mk('wgflow ops', 'wgflow', 'mlp silu 256', 20, { dispatchesPerUnit: 33 }),
      mk('wgflow layer', 'wgflow', 'mlp silu 256', 4, { dispatchesPerUnit: 26 }),
      mk('jax-js 0.1.25', 'jax-js', 'mlp silu 256', 20, { dispatchesPerUnit: 65, submitsPerUnit: 65 }),
      mk('tfjs-webgpu 4.22', 'tfjs', 'mlp silu 256', 100, { ok: false, diff: 0.5 }),
    ],
    profile: [{ batch: 256, act: 'silu', level: 'layer', totalMs: 1.5, kernels: [{ index: 0, kernel: 'adam[8706]', workgroups: [35, 1, 1], ms: 1.5, samples: [1.5] }] }],
    targets: null,
    errors: ['tfjs: something failed\nsecond line'],
  };
}

/** Figures of the wgflow-only targets section (bench/engine-targets.ts). */
function fakeTargets(): NonNullable<PeersResult['targets']> {
  const flow = (model: string, level: 'ops' | 'layer' | 'mlp', ms: number, d: number) => ({ model, level, ms, samples: [ms], dispatchesPerStep: d, loss: 2.5 });
  const rk4 = (n: number, level: 'step' | 'ops', ms: number, gflops: number, dispatches: number) => ({ n, steps: 100, level, ms, samples: [ms], dispatches, gflops, maxAbsDiff: 0 });
  return {
    flows: [flow('realnvp', 'ops', 90, 391), flow('realnvp', 'layer', 60, 351), flow('realnvp', 'mlp', 15, 38), flow('maf', 'layer', 80, 502), flow('maf', 'mlp', 40, 60)],
    sampling: [rk4(256, 'step', 30, 6, 11), rk4(256, 'ops', 450, 0.4, 3901), rk4(10000, 'step', 1000, 3.5, 11), rk4(10000, 'ops', 5000, 0.7, 3901)],
    ot: { batch: 256, cpuMs: 4, gpuMs: 5, pipelinedMs: 6, dispatchesPerStep: 2, submitsPerStep: 1, fusion: 'step' },
  };
}

describe('report', () => {
  it('tables: one row per engine, counts, numerics flags, targets from the fastest wgflow level, profile, errors', () => {
    const r = fakeResult();
    const md = renderPeersTables([r], 'wgflow bench --peers');
    expect(md).toContain('`wgflow bench --peers`');
    expect(md).toContain('| wgflow | 5.37 (3 / 1) |'); // 2·1024³ / 400 ms
    expect(md).toContain('| jax-js 0.1.25 | 2.15 (3 / 1) |');
    expect(md).toContain('| wgflow layer | 4.00 (26 / 1) |');
    expect(md).toContain('| jax-js 0.1.25 | 20.0 (65 / 65) |');
    expect(md).toContain('| tfjs-webgpu 4.22 | 100 (3 / 1) ✗numerics |');
    expect(md).toContain('| Chromium | mlp silu 256: step time ≤ 0.25× jax-js | wgflow layer | 0.20× | yes |');
    expect(md).toContain('| Chromium | matmul 1024³: GFLOP/s ≥ 3× jax-js | wgflow | 2.50× | no |');
    expect(md).toContain('| 1 | adam[8706] | 35×1×1 | 1.500 |');
    expect(md).toContain('- Chromium: tfjs: something failed\n');
    expect(md).not.toContain('second line');
  });

  it('wgflow-only targets: flows dispatches and speed-up over layer, RK4 against ops or the best matmul, the OT-CFM step', () => {
    const r = { ...fakeResult(), targets: fakeTargets() };
    const md = renderPeersTables([r]);
    expect(md).toContain('| realnvp | mlp | 15.0 (38; 2.5000) |');
    expect(md).toContain('| 10000 | step | 1000 (11; 3.50; 0.0e+0) |');
    expect(md).toContain('| best matmul GFLOP/s (this run) | | 5.37 |'); // 2·1024³ / 400 ms
    expect(md).toContain('| Chromium | realnvp training step: ≤ 40 dispatches | wgflow mlp | 38 | yes |');
    expect(md).toContain('| Chromium | realnvp training step: ≥ 3× faster than layer | wgflow mlp | 4.00× | yes |');
    expect(md).toContain('| Chromium | maf training step: ≤ 40 dispatches | wgflow mlp | 60 | no |');
    expect(md).toContain('| Chromium | maf training step: ≥ 3× faster than layer | wgflow mlp | 2.00× | no |');
    expect(md).toContain('| Chromium | RK4 n=256: fused ≥ 10× ops | wgflow step | 15.00× | yes |');
    expect(md).toContain('| Chromium | RK4 n=10000: fused GFLOP/s ≥ 0.7× best matmul | wgflow step | 0.65× | no |'); // 3.5 / 5.37
    expect(md).toContain("| Chromium | OT-CFM exact step, batch 256: ms ÷ PyTorch's 7.4 ms (report) | wgflow step | 0.81× | – |");
    expect(md).toContain('| Chromium | 6.00 | 4.00 | 5.00 | 2 / 1 |');
  });

  it('targets ignore a wgflow level whose numerics failed', () => {
    const r = fakeResult();
    r.cases[3]!.ok = false;
    const t = targetChecks([r]).find((x) => x.target.startsWith('mlp'))!;
    expect(t.wgflow).toBe('wgflow ops');
    expect(t.ratio).toBe(1);
    expect(t.met).toBe(false);
  });

  it('JSON carries the command, chart path, targets and the raw results', () => {
    const r = fakeResult();
    const j = JSON.parse(JSON.stringify(peersJson([r], 'wgflow bench --peers --json', 'c.png'))) as Record<string, unknown>;
    expect(j.type).toBe('peers');
    expect(j.command).toBe('wgflow bench --peers --json');
    expect(j.chart).toBe('c.png');
    expect((j.targets as unknown[]).length).toBe(2);
    expect((j.results as PeersResult[])[0]!.cases).toHaveLength(6);
  });

  it('chart is a PNG with a row per runtime', () => {
    const one = renderPeersChart([fakeResult()]);
    const two = renderPeersChart([fakeResult(), { ...fakeResult(), runtime: 'node' }]);
    expect([...one.subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    const h1 = decodePngSize(one).height;
    const h2 = decodePngSize(two).height;
    expect(decodePngSize(one).width).toBe(1400);
    expect(h2 - h1).toBe(330);
  });
});

describe('peers compute what wgflow computes (tiny sizes, Node + Dawn)', () => {
  it('jax-js and tfjs: the same matmul product and the same loss after the same Adam steps', async () => {
    const b = await gpu();
    await installNodeNavigatorGpu();
    const r = await runPeersBench(b, { sections: ['peers'], sizes: [48], batches: [16], acts: ['silu'], reps: 1, steps: 2, warmupSteps: 1, targetRepMs: 1 }, () => {}, loadTfjsForNode);
    expect(r.errors).toEqual([]);
    const names = (w: string) => r.cases.filter((c) => c.workload === w).map((c) => c.family);
    expect(names('matmul 48')).toEqual(['wgflow', 'jax-js', 'tfjs']);
    expect(new Set(names('mlp silu 16'))).toEqual(new Set(['wgflow', 'jax-js', 'tfjs']));
    for (const c of r.cases) {
      expect(c.ok, `${c.workload} ${c.engine} diff ${c.diff}`).toBe(true);
      if (c.diff !== null) expect(c.diff).toBeLessThanOrEqual(c.kind === 'matmul' ? MATMUL_TOL : LOSS_TOL);
      expect(c.dispatchesPerUnit).toBeGreaterThan(0);
    }
    // wgflow: one dispatch per product; a training step is one submit.
    expect(r.cases.find((c) => c.workload === 'matmul 48' && c.family === 'wgflow')!.dispatchesPerUnit).toBe(1);
    for (const c of r.cases.filter((x) => x.kind === 'mlp' && x.family === 'wgflow')) expect(c.submitsPerUnit).toBe(1);
    // Every engine ran the same steps from the same start: the losses moved, and alike.
    const losses = r.cases.filter((c) => c.kind === 'mlp').map((c) => c.loss!);
    expect(Math.max(...losses) - Math.min(...losses)).toBeLessThan(1e-3 * Math.abs(losses[0]!));
  });
});
