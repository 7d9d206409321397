/**
 * Exact optimal transport between two equal-size, uniformly weighted point sets, on the CPU.
 *
 * With uniform marginals a = b = 1/n the vertices of the transport polytope are the permutation
 * matrices / n (Birkhoff–von Neumann), so the exact OT plan that POT's network simplex (`ot.emd`)
 * returns is — up to ties — the minimum-cost perfect matching (linear assignment) of the cost
 * matrix, divided by n. Solving the assignment directly is much cheaper than a general network
 * simplex, and it is what OT-CFM's minibatch coupling needs at every training step (Tong et al.,
 * "Improving and generalizing flow-based generative models with minibatch optimal transport",
 * TMLR 2024; torchcfm `OTPlanSampler(method="exact")`).
 *
 * ## Algorithm
 *
 * Both paths below keep the dual prices v (one per column) and the implied row duals
 * u_i = min_j (c_ij − v_j), and end with an exact certificate: u_i + v_j ≤ c_ij for all (i, j) with
 * equality on the matching, hence Σu + Σv = Σ c_{i,σ(i)} (LP duality ⇒ the matching is optimal).
 *
 * `jv` — Jonker & Volgenant, "A shortest augmenting path algorithm for dense and sparse linear
 * assignment problems", Computing 38 (1987) 325–340 (LAPJV):
 *  1. column reduction      v_j = min_i c_ij; a column's argmin row takes it if still free;
 *  2. reduction transfer    a row matched to j alone passes its slack: v_j −= min_{k≠j}(c_ik − v_k);
 *  3. augmenting row reduction (2 passes): a free row takes its cheapest column j1 under c − v and
 *     lowers v_j1 by (second cheapest − cheapest) so it stays tight; the displaced row becomes free;
 *  4. augmentation: Dijkstra on the reduced costs (all ≥ 0) from each free row to a free column;
 *     scanned columns get v_j += d_j − d_min, which keeps every reduced cost ≥ 0 (dual feasible).
 *
 * `auction` (default for n ≥ 48) — the same steps 3–4, but started from prices that are already
 * nearly optimal, computed by Bertsekas' auction algorithm with ε-scaling (Bertsekas, "The auction
 * algorithm: a distributed relaxation method for the assignment problem", Ann. Oper. Res. 14 (1988);
 * Bertsekas & Eckstein, Math. Prog. 42 (1988)). In a phase with increment ε every free row bids for
 * its cheapest column j1, lowering v_j1 by (second − cheapest) + ε; the phase ends when every row is
 * assigned and leaves the prices ε-optimal. ε shrinks by a factor θ per phase. Why: on OT-CFM costs
 * (N(0, I) → moons, squared Euclidean) the cold-started LAPJV spends most of its time in long
 * Dijkstra searches (≈ 110 scanned columns per augmentation at n = 256, 15–20 ms), because column
 * minima are far from the transport potential; the auction builds that potential cheaply, after
 * which step 3 (at ε = 0) leaves only a handful of free rows with very short augmenting paths. The
 * auction's answer is never trusted on its own: exactness comes from steps 3–4, so floating-point
 * costs need no ε < δ/n argument.
 *
 * Candidate lists (for n > 96, once ε is small): during the auction and step 3 prices only rise
 * (v only falls), so reduced costs c_ij − v_j only grow. A row keeps the columns whose reduced cost
 * was below a threshold T when the list was built; every other column is still ≥ T. If the two
 * cheapest listed columns are ≤ T they are the row's true best and second best, so a bid costs
 * O(list) instead of O(n); otherwise the row is rescanned densely and its list rebuilt (the idea of
 * the "lists" in Bertsekas' sparse auction codes, made exact by the monotone-price threshold).
 *
 * Termination under floating point: ε is kept ≥ 2⁻⁴⁵·(max|c| + 2·range), far above the rounding
 * of any price, so every bid lowers a price; each phase is also capped (after which the solver falls
 * back to steps 3–4, which always terminate: step 3 is capped too, and each Dijkstra search scans
 * at most n columns). Ties and duplicate points are therefore safe.
 *
 * Measured (bench/assignment.ts, Node 20, the 2-core dev machine, median over fresh batches of 2-D
 * points, N(0, I) → moons): n = 256 ≈ 3.0–3.3 ms per solve (plain LAPJV path: ≈ 20 ms; POT's
 * network simplex in SPEC §5.1: ≈ 4.9 ms), n = 1024 ≈ 46–55 ms (plain LAPJV: ≈ 1.0–1.2 s).
 * Heavily tied inputs (identical rows, integer costs) are slower than random ones (≈ 0.3–0.5 s at
 * n = 1024, ≈ 2.5 s for 2 048 identical points) but still exact and terminating.
 */

export interface AssignmentResult {
  /** rowToCol[i] = column matched to row i. */
  rowToCol: Int32Array;
  /** colToRow[j] = row matched to column j (the inverse permutation). */
  colToRow: Int32Array;
  /** Total cost Σ_i c[i, rowToCol[i]] (not divided by n). */
  cost: number;
  /** Row duals: u_i + v_j ≤ c_ij for all i, j, with equality where j = rowToCol[i]. */
  u: Float64Array;
  /** Column duals. */
  v: Float64Array;
}

export interface AssignmentOptions {
  /**
   * 'auto' (default): 'auction' for n ≥ 48, else 'jv'. 'jv': plain LAPJV from column reduction.
   * 'auction': ε-scaling auction for the prices, then LAPJV's row reduction and augmentation.
   * Both are exact; they may return different optimal matchings when there are ties.
   */
  method?: 'auto' | 'jv' | 'auction';
}

// ---- tuning (measured on N(0, I) → moons / N(0, I) squared-Euclidean costs, n = 256 and 1024) ----
/** Below this n the plain LAPJV path is used (the auction's fixed cost does not pay off). */
const AUCTION_MIN_N = 48;
/** First auction ε = range / EPS_START_DIV, where range = max c − min c. */
const EPS_START_DIV = 32;
/** ε shrinks by this factor per phase. */
const THETA = 5;
/** Last auction ε = range · EPS_FINAL_REL (then ε = 0 row reduction and Dijkstra make it exact). */
const EPS_FINAL_REL = 1e-6;
/** Candidate lists are used once ε ≤ range · LIST_FROM_REL (earlier, prices move too much). */
const LIST_FROM_REL = 3e-3;
/** Target and maximum candidate-list lengths. */
const LIST_TARGET = 16;
const LIST_MAX = 48;
/** Initial list width (in reduced cost above the second best) = LIST_WIDTH0 · ε. */
const LIST_WIDTH0 = 8;
/** Row reduction at ε = 0 stops re-bidding displaced rows after ARR_CAP · n bids. */
const ARR_CAP = 4;
/** An auction phase that needs more than this many bids per row is abandoned (safety valve). */
const PHASE_CAP = 200;

function checkN(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: n must be a positive integer, got ${n}`);
}

/**
 * Validates finiteness of an n×n cost matrix and returns [min, max] (one pass, branch-light:
 * `c - c` is NaN exactly for ±Infinity and NaN).
 */
function costRange(cost: Float64Array | Float32Array, n: number, what: string): [number, number] {
  let lo = Infinity, hi = -Infinity;
  const nn = n * n;
  for (let k = 0; k < nn; k++) {
    const c = cost[k]!;
    if (c - c !== 0) {
      throw new Error(`${what}: cost[${k}] (row ${Math.floor(k / n)}, column ${k % n}) is ${c}; all entries must be finite`);
    }
    if (c < lo) lo = c;
    if (c > hi) hi = c;
  }
  return [lo, hi];
}

/**
 * Minimum-cost perfect matching of the dense n×n cost matrix `cost` (row-major, length n·n).
 * Float32 input is widened to Float64 first (one copy); all arithmetic is Float64.
 * Throws on a wrong length, a non-integer or non-positive n, or a non-finite entry.
 */
export function solveAssignment(cost: Float64Array | Float32Array, n: number, opts: AssignmentOptions = {}): AssignmentResult {
  checkN(n, 'solveAssignment');
  if (!(cost instanceof Float64Array) && !(cost instanceof Float32Array)) {
    throw new Error('solveAssignment: cost must be a Float64Array or Float32Array');
  }
  const nn = n * n;
  if (cost.length !== nn) {
    throw new Error(
      `solveAssignment: cost has length ${cost.length}, expected n·n = ${nn} for a square ${n}×${n} matrix (row-major)`,
    );
  }
  const method = opts.method ?? 'auto';
  if (method !== 'auto' && method !== 'jv' && method !== 'auction') {
    throw new Error(`solveAssignment: method must be 'auto', 'jv' or 'auction', got ${String(method)}`);
  }
  const [lo, hi] = costRange(cost, n, 'solveAssignment');
  const c64 = cost instanceof Float64Array ? cost : Float64Array.from(cost);
  const useAuction = method === 'auction' || (method === 'auto' && n >= AUCTION_MIN_N);
  return solveChecked(c64, n, lo, hi, useAuction);
}

/** Preallocated working arrays of one solve (no allocation inside any loop). */
interface Work {
  x: Int32Array; // row -> column, -1 if free
  y: Int32Array; // column -> row, -1 if free
  v: Float64Array; // column prices (duals)
  stack: Int32Array; // free rows
  free: Int32Array; // rows left for augmentation
  d: Float64Array; // Dijkstra distances
  pred: Int32Array; // Dijkstra predecessor row of each column
  done: Uint8Array; // Dijkstra: column scanned
  scanned: Int32Array; // Dijkstra: scanned columns in order
  // candidate lists (empty when unused)
  list: Int32Array; // LIST_MAX slots per row
  listLen: Int32Array;
  listThr: Float64Array; // every unlisted column of row i has reduced cost ≥ listThr[i]
  listWidth: Float64Array; // per-row list width, adapted to hit LIST_TARGET entries
  hbuf: Float64Array; // LIST_MAX reduced costs being filtered
  top2: Float64Array; // out-params of the best-two scans and buildList: umin, usub
  top2j: Int32Array; // out-params of the best-two scans and buildList: j1, j2
}

function solveChecked(c: Float64Array, n: number, lo: number, hi: number, useAuction: boolean): AssignmentResult {
  const x = new Int32Array(n).fill(-1);
  const y = new Int32Array(n).fill(-1);
  const v = new Float64Array(n);
  const u = new Float64Array(n);
  if (n === 1) {
    x[0] = 0;
    y[0] = 0;
    v[0] = c[0]!;
    return { rowToCol: x, colToRow: y, cost: c[0]!, u, v };
  }
  const useLists = useAuction && n > 2 * LIST_MAX;
  const w: Work = {
    x, y, v,
    stack: new Int32Array(n),
    free: new Int32Array(n),
    d: new Float64Array(n),
    pred: new Int32Array(n),
    done: new Uint8Array(n),
    scanned: new Int32Array(n),
    list: new Int32Array(useLists ? n * LIST_MAX : 0),
    listLen: new Int32Array(useLists ? n : 0),
    listThr: new Float64Array(useLists ? n : 0),
    listWidth: new Float64Array(useLists ? n : 0),
    hbuf: new Float64Array(LIST_MAX),
    top2: new Float64Array(2),
    top2j: new Int32Array(2),
  };

  let numFree: number;
  const range = hi - lo;
  if (!useAuction || !(range > 0)) {
    numFree = jvInitialize(c, n, w);
  } else {
    columnMinima(c, n, v);
    // ε must stay far above the rounding of any price: |v| ≤ max|c| + 2·range throughout.
    const epsFloor = (Math.max(Math.abs(lo), Math.abs(hi)) + 2 * range) * 2 ** -45;
    const epsFinal = Math.max(range * EPS_FINAL_REL, epsFloor);
    let listsReady = false;
    for (let eps = Math.max(range / EPS_START_DIV, epsFinal); ; eps = Math.max(eps / THETA, epsFinal)) {
      if (useLists && eps <= range * LIST_FROM_REL && !listsReady) {
        w.listThr.fill(-Infinity); // forces a dense rebuild on each row's first bid
        w.listWidth.fill(LIST_WIDTH0 * eps);
        listsReady = true;
      }
      // A phase over its bid cap is abandoned: its prices are still valid input for what follows.
      if (auctionPass(c, n, w, eps, listsReady, PHASE_CAP * n) < 0) break;
      if (eps <= epsFinal) break;
    }
    if (useLists && !listsReady) {
      w.listThr.fill(-Infinity);
      w.listWidth.fill(LIST_WIDTH0 * epsFinal);
      listsReady = true;
    }
    // ε = 0: LAPJV's augmenting row reduction from an empty assignment at the auction's prices.
    numFree = auctionPass(c, n, w, 0, listsReady, ARR_CAP * n);
  }
  for (let k = 0; k < numFree; k++) augment(c, n, w.free[k]!, w);

  let total = 0;
  for (let i = 0; i < n; i++) {
    const j = x[i]!;
    const cij = c[i * n + j]!;
    u[i] = cij - v[j]!;
    total += cij;
  }
  return { rowToCol: x, colToRow: y, cost: total, u, v };
}

/** v_j = min_i c_ij (row-wise sweep over contiguous memory). */
function columnMinima(c: Float64Array, n: number, v: Float64Array): void {
  for (let j = 0; j < n; j++) v[j] = c[j]!;
  for (let i = 1; i < n; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const h = c[row + j]!;
      if (h < v[j]!) v[j] = h;
    }
  }
}

/**
 * LAPJV steps 1–3: column reduction, reduction transfer, two passes of augmenting row reduction.
 * Leaves the rows still free in w.free and returns their number.
 */
function jvInitialize(c: Float64Array, n: number, w: Work): number {
  const { x, y, v, free } = w;
  const matches = w.pred; // reused as scratch: rows' number of column-minimum wins
  const argmin = w.scanned; // reused as scratch: argmin row of each column
  matches.fill(0);
  argmin.fill(0);
  // 1. Column reduction (first minimum kept on ties), columns given away in reverse order.
  for (let j = 0; j < n; j++) v[j] = c[j]!;
  for (let i = 1; i < n; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const h = c[row + j]!;
      if (h < v[j]!) {
        v[j] = h;
        argmin[j] = i;
      }
    }
  }
  for (let j = n - 1; j >= 0; j--) {
    const imin = argmin[j]!;
    if (matches[imin]++ === 0) {
      x[imin] = j;
      y[j] = imin;
    }
  }
  // 2. Reduction transfer.
  let numFree = 0;
  for (let i = 0; i < n; i++) {
    const m = matches[i]!;
    if (m === 0) {
      free[numFree++] = i;
    } else if (m === 1) {
      const j1 = x[i]!;
      const row = i * n;
      let min = Infinity;
      for (let j = 0; j < n; j++) {
        if (j !== j1) {
          const h = c[row + j]! - v[j]!;
          if (h < min) min = h;
        }
      }
      v[j1] = v[j1]! - min;
    }
  }
  // 3. Augmenting row reduction, two passes; the free list is consumed from the front and refilled
  // in place (never overtaking the read position). A displaced row is re-bid at once only while
  // the pass has done fewer than ARR_CAP·n bids.
  for (let pass = 0; pass < 2 && numFree > 0; pass++) {
    let k = 0;
    const prev = numFree;
    numFree = 0;
    let steps = 0;
    const cap = ARR_CAP * n + prev;
    while (k < prev) {
      const i = free[k++]!;
      steps++;
      denseBestTwo(c, n, i, w);
      const i0 = bidTight(w, i);
      if (i0 >= 0) {
        // Re-bid at once only after a real price decrease (row i then holds its best column); a
        // row displaced by a tie waits for the next pass or augmentation, as in LAPJV.
        if (x[i] === w.top2j[0]! && steps < cap) free[--k] = i0;
        else free[numFree++] = i0;
      }
    }
  }
  return numFree;
}

/**
 * One Gauss–Seidel auction pass from an empty assignment at the current prices.
 * eps > 0: an ε-scaling phase (every bid lowers the price by (second − best) + ε); returns the
 *   number of bids, or −1 if `cap` bids were exceeded (the phase is abandoned).
 * eps = 0: LAPJV's augmenting row reduction (bids keep the bidder tight; on an exact tie the row
 *   takes its second-best column instead); after `cap` bids displaced rows are no longer re-bid but
 *   left in w.free; returns how many.
 * With `lists`, bids use the candidate lists (exact, see the file comment).
 */
function auctionPass(c: Float64Array, n: number, w: Work, eps: number, lists: boolean, cap: number): number {
  const { x, y, v, stack, free, listLen, listThr } = w;
  x.fill(-1);
  y.fill(-1);
  for (let i = 0; i < n; i++) stack[i] = n - 1 - i;
  let top = n, steps = 0, numFree = 0;
  while (top > 0) {
    const i = stack[--top]!;
    steps++;
    if (lists) {
      listBestTwo(c, n, i, w);
      const listSub = w.top2[1]!;
      if (!(listSub <= listThr[i]!)) buildList(c, n, w, i, listLen[i]! >= 2 ? listSub : Infinity);
    } else {
      denseBestTwo(c, n, i, w);
    }
    if (eps > 0) {
      const umin = w.top2[0]!, usub = w.top2[1]!, j1 = w.top2j[0]!;
      v[j1] = v[j1]! - (usub - umin) - eps;
      const i0 = y[j1]!;
      y[j1] = i;
      x[i] = j1;
      if (i0 >= 0) {
        x[i0] = -1;
        stack[top++] = i0;
        if (steps > cap) return -1;
      }
    } else {
      const i0 = bidTight(w, i);
      if (i0 >= 0) {
        if (steps < cap) stack[top++] = i0;
        else free[numFree++] = i0;
      }
    }
  }
  return eps > 0 ? steps : numFree;
}

/**
 * Best and second-best reduced cost c_ij − v_j of row i over all columns, into w.top2 / w.top2j
 * (the first column wins ties). The step every dense bid starts with, in LAPJV and the auction.
 */
function denseBestTwo(c: Float64Array, n: number, i: number, w: Work): void {
  const v = w.v;
  const row = i * n;
  let umin = c[row]! - v[0]!, j1 = 0, usub = Infinity, j2 = -1;
  for (let j = 1; j < n; j++) {
    const h = c[row + j]! - v[j]!;
    if (h < usub) {
      if (h >= umin) {
        usub = h;
        j2 = j;
      } else {
        usub = umin;
        j2 = j1;
        umin = h;
        j1 = j;
      }
    }
  }
  setBestTwo(w, umin, usub, j1, j2);
}

/**
 * Best and second best of row i over its candidate list only, into w.top2 / w.top2j. They are the
 * row's true best two only if the second best is ≤ w.listThr[i] (see the file comment); the caller
 * checks that and otherwise rebuilds the list. Kept apart from denseBestTwo: indexing through the
 * list in that loop would slow the dense scan.
 */
function listBestTwo(c: Float64Array, n: number, i: number, w: Work): void {
  const { v, list } = w;
  const row = i * n, base = i * LIST_MAX, len = w.listLen[i]!;
  let umin = Infinity, usub = Infinity, j1 = -1, j2 = -1;
  for (let t = 0; t < len; t++) {
    const j = list[base + t]!;
    const h = c[row + j]! - v[j]!;
    if (h < usub) {
      if (h >= umin) {
        usub = h;
        j2 = j;
      } else {
        usub = umin;
        j2 = j1;
        umin = h;
        j1 = j;
      }
    }
  }
  setBestTwo(w, umin, usub, j1, j2);
}

function setBestTwo(w: Work, umin: number, usub: number, j1: number, j2: number): void {
  w.top2[0] = umin;
  w.top2[1] = usub;
  w.top2j[0] = j1;
  w.top2j[1] = j2;
}

/**
 * An ε = 0 bid of row i from its best two in w.top2 / w.top2j (LAPJV's augmenting row reduction,
 * shared by jvInitialize and the auction's last pass): v_j1 is lowered by (second − best) so row i
 * stays tight. Only a real decrease in floating point counts; otherwise it is a tie and the row
 * takes its second-best column instead (this is what keeps ties from cycling). Assigns row i and
 * returns the row it displaced (now unassigned), or −1.
 */
function bidTight(w: Work, i: number): number {
  const { x, y, v } = w;
  let j1 = w.top2j[0]!;
  let i0 = y[j1]!;
  const vNew = v[j1]! - (w.top2[1]! - w.top2[0]!);
  if (vNew < v[j1]!) v[j1] = vNew;
  else if (i0 >= 0) {
    j1 = w.top2j[1]!;
    i0 = y[j1]!;
  }
  x[i] = j1;
  y[j1] = i;
  if (i0 >= 0) x[i0] = -1;
  return i0;
}

/**
 * Dense rescan of row i: exact best/second best (into w.top2/w.top2j) and a new candidate list of
 * the columns with reduced cost < T = usub + width (at most LIST_MAX; the width is halved while the
 * list overflows). thr = T is valid because every unlisted column is ≥ T now and only grows.
 * `usubBound` ≥ the row's true second best (the stale list's second best): the columns below
 * usubBound + width are gathered during the same pass, so usually one pass suffices.
 */
function buildList(c: Float64Array, n: number, w: Work, i: number, usubBound: number): void {
  const { v, list, hbuf } = w;
  const row = i * n, base = i * LIST_MAX;
  let width = w.listWidth[i]!;
  const Tpre = usubBound + width; // ≥ the final T; +Infinity when there is no usable bound
  let umin = Infinity, j1 = -1, usub = Infinity, j2 = -1;
  let len = 0;
  for (let j = 0; j < n; j++) {
    const h = c[row + j]! - v[j]!;
    if (h < usub) {
      if (h >= umin) {
        usub = h;
        j2 = j;
      } else {
        usub = umin;
        j2 = j1;
        umin = h;
        j1 = j;
      }
    }
    if (h < Tpre) {
      if (len < LIST_MAX) {
        list[base + len] = j;
        hbuf[len] = h;
      }
      len++;
    }
  }
  setBestTwo(w, umin, usub, j1, j2);
  let T = usub + width;
  if (len <= LIST_MAX) {
    // One pass was enough: keep the gathered columns below T.
    len = keepBelow(w, base, len, T);
  } else {
    // Second pass with the exact threshold.
    len = 0;
    let halvings = 0;
    let tieMode = false;
    for (let j = 0; j < n; j++) {
      const h = c[row + j]! - v[j]!;
      if (tieMode) {
        // T = usub: the list is j1, j2 and what fits of the other columns ≤ usub (the rest are
        // ≥ usub = T anyway, and only j1 can be below it).
        if (h <= T && len < LIST_MAX && j !== j1 && j !== j2) list[base + len++] = j;
      } else if (h < T) {
        list[base + len] = j;
        hbuf[len++] = h;
        if (len === LIST_MAX) {
          // Too many columns within the width: halve it and filter (a few times at most).
          do {
            width *= 0.5;
            T = usub + width;
            len = keepBelow(w, base, len, T);
          } while (len >= (LIST_MAX * 3) >> 2 && ++halvings < 4);
          if (len >= (LIST_MAX * 3) >> 2 || !(T > usub)) {
            // Many (near-)ties at the second-best value, e.g. duplicate points or integer costs:
            // switch to T = usub and keep the columns ≤ usub.
            tieMode = true;
            T = usub;
            let k = 0;
            for (let t = 0; t < len; t++) {
              const jt = list[base + t]!;
              if (hbuf[t]! <= T && jt !== j1 && jt !== j2) list[base + k++] = jt;
            }
            if (k > LIST_MAX - 2) k = LIST_MAX - 2;
            list[base + k++] = j1;
            list[base + k++] = j2;
            len = k;
          }
        }
      }
    }
  }
  if (len < 2 || !(T >= usub)) {
    // The width has shrunk below the rounding of usub (heavy ties): the two best columns with
    // T = usub form an exact list (every other column is ≥ usub).
    list[base] = j1;
    list[base + 1] = j2;
    len = 2;
    T = usub;
  }
  w.listLen[i] = len;
  w.listThr[i] = T;
  if (len < LIST_TARGET >> 1) width = width > 0 ? 2 * width : (Math.abs(usub) + 1) * 2 ** -40;
  else if (len > LIST_TARGET * 2) width *= 0.5;
  w.listWidth[i] = width;
}

/**
 * Keeps, in order, the first `len` list entries of a row (from `base`) whose reduced cost in
 * w.hbuf is < T, compacting list and hbuf together; returns the new length.
 */
function keepBelow(w: Work, base: number, len: number, T: number): number {
  const { list, hbuf } = w;
  let k = 0;
  for (let t = 0; t < len; t++) {
    const ht = hbuf[t]!;
    if (ht < T) {
      hbuf[k] = ht;
      list[base + k] = list[base + t]!;
      k++;
    }
  }
  return k;
}

/**
 * LAPJV step 4 from free row `fr`: Dijkstra over columns with reduced costs c_ij − u_i − v_j ≥ 0
 * (u_i implied by the tight matched pair of each scanned row), stopping at the first free column
 * reached; then v_j += d_j − d_min on the scanned columns (keeps all reduced costs ≥ 0 and makes the
 * new path tight) and the matching is flipped along the path. At most n columns are scanned.
 */
function augment(c: Float64Array, n: number, fr: number, w: Work): void {
  const { x, y, v, d, pred, done, scanned } = w;
  for (let j = 0; j < n; j++) {
    d[j] = Infinity;
    done[j] = 0;
  }
  let nScanned = 0;
  let i = fr, ui = 0, minVal = 0, sink = -1;
  for (;;) {
    const row = i * n;
    const base = minVal - ui;
    let lowest = Infinity, jb = -1;
    for (let j = 0; j < n; j++) {
      if (done[j] !== 0) continue;
      const r = base + c[row + j]! - v[j]!;
      let dj = d[j]!;
      if (r < dj) {
        d[j] = r;
        pred[j] = i;
        dj = r;
      }
      // Prefer a free column on ties: it ends the search.
      if (dj < lowest || (dj === lowest && y[j]! < 0)) {
        lowest = dj;
        jb = j;
      }
    }
    minVal = lowest;
    if (y[jb]! < 0) {
      sink = jb;
      break;
    }
    done[jb] = 1;
    scanned[nScanned++] = jb;
    i = y[jb]!;
    ui = c[i * n + jb]! - v[jb]!;
  }
  for (let k = 0; k < nScanned; k++) {
    const j = scanned[k]!;
    v[j] = v[j]! + d[j]! - minVal;
  }
  let j = sink;
  for (;;) {
    const r = pred[j]!;
    y[j] = r;
    const next = x[r]!;
    x[r] = j;
    j = next;
    if (r === fr) break;
  }
}

/**
 * Squared-Euclidean cost matrix C_ij = ‖x_i − y_j‖² of x (n×d, row-major) and y (m×d), the ground
 * cost of OT-CFM's minibatch coupling and of the W2 metric (POT `ot.dist(x, y)`'s default metric).
 * Computed as a sum of squared differences in Float64 (not ‖x‖² + ‖y‖² − 2x·y, which cancels
 * catastrophically for nearby points and can go negative). `out`, if given, must hold n·m values.
 */
export function squaredEuclideanCost(
  x: Float32Array,
  y: Float32Array,
  n: number,
  m: number,
  d: number,
  out?: Float64Array,
): Float64Array {
  checkN(n, 'squaredEuclideanCost');
  if (!Number.isInteger(m) || m < 1) throw new Error(`squaredEuclideanCost: m must be a positive integer, got ${m}`);
  if (!Number.isInteger(d) || d < 1) throw new Error(`squaredEuclideanCost: d must be a positive integer, got ${d}`);
  if (x.length !== n * d) throw new Error(`squaredEuclideanCost: x has length ${x.length}, expected n·d = ${n}·${d} = ${n * d}`);
  if (y.length !== m * d) throw new Error(`squaredEuclideanCost: y has length ${y.length}, expected m·d = ${m}·${d} = ${m * d}`);
  const C = out ?? new Float64Array(n * m);
  if (C.length !== n * m) throw new Error(`squaredEuclideanCost: out has length ${C.length}, expected n·m = ${n * m}`);
  if (d === 2) {
    // The 2-D toy tasks: unrolled.
    for (let i = 0; i < n; i++) {
      const a0 = x[2 * i]!, a1 = x[2 * i + 1]!;
      const row = i * m;
      for (let j = 0; j < m; j++) {
        const e0 = a0 - y[2 * j]!, e1 = a1 - y[2 * j + 1]!;
        C[row + j] = e0 * e0 + e1 * e1;
      }
    }
    return C;
  }
  for (let i = 0; i < n; i++) {
    const xo = i * d;
    const row = i * m;
    for (let j = 0; j < m; j++) {
      const yo = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) {
        const e = x[xo + k]! - y[yo + k]!;
        s += e * e;
      }
      C[row + j] = s;
    }
  }
  return C;
}

/**
 * Exact optimal assignment for equal-size point sets x0, x1 (each n×d, row-major) under the
 * squared-Euclidean cost; the full result (permutation, total cost, duals).
 */
export function assignPoints(x0: Float32Array, x1: Float32Array, n: number, d: number, what = 'assignPoints'): AssignmentResult {
  checkN(n, what);
  const C = squaredEuclideanCost(x0, x1, n, n, d);
  const [lo, hi] = costRange(C, n, what);
  return solveChecked(C, n, lo, hi, n >= AUCTION_MIN_N);
}

/**
 * Exact minibatch OT coupling for equal-size batches x0, x1 (each n×d, row-major) under the
 * squared-Euclidean cost: returns perm with x0[i] ↔ x1[perm[i]]. With uniform weights the exact
 * plan (POT `ot.emd`, as torchcfm's OTPlanSampler uses) is this permutation matrix divided by n, up
 * to ties between equally optimal plans.
 */
export function otPlanExact(x0: Float32Array, x1: Float32Array, n: number, d: number): Int32Array {
  return assignPoints(x0, x1, n, d, 'otPlanExact').rowToCol;
}
