/**
 * Training progress on the terminal: a redrawn bar on a TTY (step, loss, steps/s, ETA), plain lines
 * when the output is a file or a pipe, and JSON lines with --json.
 */
import type { Progress } from '../train/contract';

export type ProgressMode = 'tty' | 'plain' | 'json';

export interface Writer {
  write(s: string): unknown;
  columns?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export function formatLoss(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(5);
}

function formatRate(r: number): string {
  if (!Number.isFinite(r) || r <= 0) return '–';
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

export class ProgressView {
  private samples: { t: number; step: number }[] = [];
  private lastPlain = -Infinity;
  private lastDraw = -Infinity;
  private barShown = false;
  private last: (Progress & { rate: number; eta: number }) | null = null;

  constructor(
    private readonly mode: ProgressMode,
    private readonly out: Writer,
    /** Step the run started from (resume), so rates count only this run's steps. */
    private readonly startStep = 0,
    private readonly now: () => number = () => performance.now(),
    /** Plain mode: at most one line per this many ms (the last step is always printed). */
    private readonly plainIntervalMs = 2000,
  ) {}

  /**
   * Steps per second over a window of at least 10 s of updates once there is that much history
   * (shorter windows jump around when checkpoints or slow steps arrive in bursts); before the first
   * update the rate comes from the trainer's elapsed time, which includes shader compilation.
   */
  private rate(step: number, elapsedMs: number): number {
    const t = this.now();
    this.samples.push({ t, step });
    while (this.samples.length > 2 && t - this.samples[1]!.t >= 10_000) this.samples.shift();
    const first = this.samples[0]!;
    if (this.samples.length >= 2 && t > first.t && step > first.step) return ((step - first.step) * 1000) / (t - first.t);
    // One report so far: its time includes shader compilation, which says nothing about the rate.
    void elapsedMs;
    return NaN;
  }

  update(p: Progress): void {
    const rate = this.rate(p.step, p.elapsedMs);
    const eta = rate > 0 ? (p.steps - p.step) / rate : NaN;
    this.last = { ...p, rate, eta };
    if (this.mode === 'json') {
      this.out.write(
        `${JSON.stringify({
          type: 'progress',
          step: p.step,
          steps: p.steps,
          loss: Number.isFinite(p.loss) ? p.loss : null,
          steps_per_s: Number.isFinite(rate) ? +rate.toFixed(3) : null,
          eta_s: Number.isFinite(eta) ? +eta.toFixed(1) : null,
          elapsed_s: +(p.elapsedMs / 1000).toFixed(3),
        })}\n`,
      );
      return;
    }
    const t = this.now();
    if (this.mode === 'plain') {
      if (t - this.lastPlain < this.plainIntervalMs && p.step < p.steps) return;
      this.lastPlain = t;
      const w = String(p.steps).length;
      this.out.write(`step ${String(p.step).padStart(w)}/${p.steps}  loss ${formatLoss(p.loss)}  ${formatRate(rate)} steps/s  ETA ${formatDuration(eta)}\n`);
      return;
    }
    if (t - this.lastDraw < 80 && p.step < p.steps) return;
    this.lastDraw = t;
    this.draw();
  }

  private draw(): void {
    const p = this.last;
    if (!p) return;
    const frac = p.steps > 0 ? Math.min(1, p.step / p.steps) : 1;
    const w = String(p.steps).length;
    const info = ` ${String(p.step).padStart(w)}/${p.steps} ${String(Math.floor(frac * 100)).padStart(3)}%  loss ${formatLoss(p.loss)}  ${formatRate(p.rate)} steps/s  ETA ${formatDuration(p.eta)}`;
    const cols = Math.max(40, this.out.columns || 80);
    const barWidth = Math.max(10, Math.min(40, cols - info.length - 1));
    const filled = frac * barWidth;
    const full = Math.floor(filled);
    const partials = ' ▏▎▍▌▋▊▉';
    const part = full < barWidth ? partials[Math.floor((filled - full) * 8)]! : '';
    const bar = '█'.repeat(full) + part + '\x1b[90m' + '░'.repeat(Math.max(0, barWidth - full - part.length));
    // Never wider than the terminal (a wrapped line would not be redrawn in place).
    this.out.write(`\r\x1b[2K\x1b[36m${bar}\x1b[0m${info.slice(0, Math.max(0, cols - 1 - barWidth))}`);
    this.barShown = true;
  }

  /** Prints a line above the bar (TTY) or as is. */
  note(line: string): void {
    if (this.mode === 'json') return;
    if (this.mode === 'tty' && this.barShown) {
      this.out.write(`\r\x1b[2K${line}\n`);
      this.draw();
    } else this.out.write(`${line}\n`);
  }

  /** Leaves the bar on its own line. */
  finish(): void {
    if (this.mode === 'tty' && this.barShown) {
      this.draw();
      this.out.write('\n');
      this.barShown = false;
    }
  }
}
