/**
 * Benchmark of the exact OT solver (cfm/ot/assignment.ts) and the W2 metric (cfm/metrics/w2.ts).
 *
 * Cases: squared-Euclidean costs between n random 2-D points, N(0, I) source → moons target (the
 * OT-CFM toy task; torchcfm's `sample_moons`: sklearn make_moons with noise 0.2, shuffled, scaled
 * ×3 − 1) and N(0, I) → N(0, I). Prints the median ms per solve over fresh random batches:
 * `solveAssignment` on a prebuilt cost matrix, `otPlanExact` including the cost matrix (what an
 * OT-CFM training step pays), the plain LAPJV path for comparison, and `wassersteinW2` (cost
 * matrix + solve) at 2 048 and 4 096 points.
 *
 * Reference (SPEC §5.1): POT 0.8.2's network simplex takes ≈ 4.9 ms ("OT alone") per 256×256
 * gaussian→moons plan on the same 2-core machine.
 *
 * Run: node scripts/run-ts.mjs bench/assignment.ts [256|1024|2048|4096]
 *  or: npx esbuild bench/assignment.ts --bundle --platform=node --format=esm --outfile=/tmp/bench-assign.mjs && node /tmp/bench-assign.mjs
 */
import { Rng } from '../engine/philox';
import { otPlanExact, solveAssignment, squaredEuclideanCost } from '../cfm/ot/assignment';
import { wassersteinW2 } from '../cfm/metrics/w2';

function gaussian(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(2 * n);
  for (let k = 0; k < a.length; k++) a[k] = rng.normal();
  return a;
}

/** torchcfm sample_moons: make_moons(n, noise=0.2) * 3 - 1 (half outer arc, half inner arc), shuffled as sklearn does. */
function moons(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(2 * n);
  const nOut = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    let px: number, py: number;
    if (i < nOut) {
      const t = (Math.PI * i) / Math.max(1, nOut - 1);
      px = Math.cos(t);
      py = Math.sin(t);
    } else {
      const t = (Math.PI * (i - nOut)) / Math.max(1, n - nOut - 1);
      px = 1 - Math.cos(t);
      py = 1 - Math.sin(t) - 0.5;
    }
    a[2 * i] = (px + 0.2 * rng.normal()) * 3 - 1;
    a[2 * i + 1] = (py + 0.2 * rng.normal()) * 3 - 1;
  }
  const p = rng.permutation(n);
  const b = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    b[2 * i] = a[2 * p[i]!]!;
    b[2 * i + 1] = a[2 * p[i]! + 1]!;
  }
  return b;
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : 0.5 * (s[m - 1]! + s[m]!);
}

/** Times `reps` runs (after `warm` untimed ones); `make(r)` prepares fresh inputs outside the timing. */
function bench(label: string, reps: number, warm: number, make: (r: number) => () => void): void {
  const times: number[] = [];
  for (let r = 0; r < warm + reps; r++) {
    const run = make(r);
    const t0 = performance.now();
    run();
    const t1 = performance.now();
    if (r >= warm) times.push(t1 - t0);
  }
  const s = [...times].sort((p, q) => p - q);
  console.log(
    `${label.padEnd(66)} median ${median(times).toFixed(3).padStart(9)} ms   min ${s[0]!.toFixed(3).padStart(9)}   max ${s[s.length - 1]!.toFixed(3).padStart(9)}   (${reps} reps)`,
  );
}

const rng = new Rng(12345);
const only = process.argv[2];
console.log(`node ${process.version}, ${process.platform}/${process.arch}`);

for (const n of [256, 1024]) {
  if (only && only !== String(n)) continue;
  const reps = n <= 256 ? 200 : 30;
  for (const [name, tgt] of [['gaussian→moons', moons], ['gaussian→gaussian', gaussian]] as const) {
    bench(`solveAssignment n=${n} ${name}`, reps, 10, () => {
      const C = squaredEuclideanCost(gaussian(rng, n), tgt(rng, n), n, n, 2);
      return () => void solveAssignment(C, n);
    });
    bench(`otPlanExact (cost + solve) n=${n} ${name}`, reps, 5, () => {
      const a = gaussian(rng, n), b = tgt(rng, n);
      return () => void otPlanExact(a, b, n, 2);
    });
    bench(`solveAssignment method 'jv' (plain LAPJV) n=${n} ${name}`, n <= 256 ? 40 : 3, 2, () => {
      const C = squaredEuclideanCost(gaussian(rng, n), tgt(rng, n), n, n, 2);
      return () => void solveAssignment(C, n, { method: 'jv' });
    });
  }
}

for (const n of [2048, 4096]) {
  if (only && only !== String(n)) continue;
  const reps = n <= 2048 ? 7 : 5;
  bench(`wassersteinW2 n=${n} moons vs moons`, reps, 1, () => {
    const a = moons(rng, n), b = moons(rng, n);
    return () => void wassersteinW2(a, b, n, 2);
  });
  bench(`wassersteinW2 n=${n} gaussian vs moons`, reps, 1, () => {
    const a = gaussian(rng, n), b = moons(rng, n);
    return () => void wassersteinW2(a, b, n, 2);
  });
}
