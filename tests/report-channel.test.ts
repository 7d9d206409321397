/**
 * Issue 12 items 0 and 4: the browser runtime's report channel belongs to the page it launched,
 * the one static server answers every malformed or foreign request with a 4xx and keeps serving,
 * and `wgflow train` writes only its own files, inside --out.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { runInBrowser } from '../browser/run-in-page';
import { TOKEN_HEADER, parseTarget, startStaticServer, type StaticServer } from '../browser/server';
import { checkPictures, outputPath, writeOutput } from '../cli/outputs';

const ROOT = path.resolve(__dirname, '..');
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-report-channel-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Sends `text` as-is on a fresh connection; resolves to the status code of the answer (0: closed without one). */
function raw(port: number, text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (c: string) => (got += c));
    sock.on('error', reject);
    sock.on('close', () => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      resolve({ status: m ? Number(m[1]) : 0, body: got.slice(got.indexOf('\r\n\r\n') + 4) });
    });
    sock.end(text);
  });
}

const get = (port: number, target: string, headers = `Host: 127.0.0.1:${port}\r\n`, method = 'GET') =>
  raw(port, `${method} ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);

/** A POST of `body` to /__report with the given headers. */
function post(port: number, headers: Record<string, string>, body: string) {
  const lines = Object.entries({ host: `127.0.0.1:${port}`, ...headers, 'content-length': String(Buffer.byteLength(body)), connection: 'close' })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return raw(port, `POST /__report HTTP/1.1\r\n${lines}\r\n${body}`);
}

/** The forged result: W2 0 on adapter "evil", with a picture named to land two folders above --out. */
const forgedResult = (seq: number) => ({
  seq,
  kind: 'result',
  data: {
    adapter: { vendor: 'evil', architecture: 'x', device: '', description: '', isFallbackAdapter: false, subgroupMinSize: null, subgroupMaxSize: null, features: [], limits: {} },
    config: {},
    state: { step: 1, losses: [], params: {}, extra: {} },
    metrics: { w2: 0, loss: 0 },
    pictures: { '../../pwned-outside-out.txt': { __wgflowBytes: 'cHduZWQ=', type: 'Uint8Array' } },
    samples: { n: 0, dim: 2 },
    trajectories: 0,
  },
});
const FORGED = JSON.stringify([forgedResult(0)]);

/**
 * A forger does not know which sequence number the page is at, so it posts the forged result under
 * each of 0..199, one request each; returns the distinct statuses it got.
 */
async function forgeEverySeq(port: number, headers: Record<string, string>): Promise<number[]> {
  const statuses = new Set<number>();
  for (let seq = 0; seq < 200; seq++) statuses.add((await post(port, headers, JSON.stringify([forgedResult(seq)]))).status);
  return [...statuses].sort();
}

describe('one static server: malformed and foreign requests get a 4xx, and it keeps serving', () => {
  let server: StaticServer;
  const refused: string[] = [];
  const reports: unknown[] = [];
  it('starts', async () => {
    server = await startStaticServer(
      { '/index.html': '<p>ok</p>', '/args.json': '{"secret":1}' },
      { privatePaths: ['/args.json'], report: { token: 'a'.repeat(64), onReport: (b) => reports.push(b), onRefused: (r) => refused.push(r) } },
    );
  });
  afterAll(() => server?.close());

  it.each([
    ['plain traversal', '/../../etc/passwd'],
    ['traversal after a name', '/index.html/../../x'],
    ['encoded traversal', '/%2e%2e/%2e%2e/etc/passwd'],
    ['encoded slash', '/..%2f..%2fetc%2fpasswd'],
    ['double-encoded traversal', '/%252e%252e/%252e%252e/etc/passwd'],
    ['backslash', '/..\\..\\etc\\passwd'],
    ['encoded backslash', '/%5c..%5cetc%5cpasswd'],
    ['NUL', '/index.html%00.png'],
    ['absolute-form, own authority', 'http://127.0.0.1:1/index.html'],
    ['absolute-form, foreign authority', 'http://evil.example/index.html'],
    ['authority-form', '127.0.0.1:80'],
    ['asterisk', '*'],
    ['scheme-relative (the `//[` that killed wgflow serve)', '//['],
    ['broken escape', '/%E0%A4%A'],
  ])('%s → 400', async (_what, target) => {
    expect((await get(server.port, target)).status).toBe(400);
    expect(parseTarget(target)).toMatchObject({ status: 400 });
  });

  it('refuses foreign and missing Host headers', async () => {
    expect((await get(server.port, '/', `Host: evil.example:${server.port}\r\n`)).status).toBe(403);
    expect((await get(server.port, '/', `Host: 127.0.0.1:${server.port + 1}\r\n`)).status).toBe(403);
    expect((await raw(server.port, 'GET / HTTP/1.0\r\n\r\n')).status).toBe(400);
    expect((await get(server.port, '/', '')).status).toBe(400);
  });

  it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'])('%s on a file → 405', async (method) => {
    expect((await get(server.port, method === 'CONNECT' ? '127.0.0.1:80' : '/index.html', `Host: 127.0.0.1:${server.port}\r\n`, method)).status).toBe(405);
  });

  it('answers garbage request lines and headers with 400', async () => {
    expect((await raw(server.port, 'GARBAGE\r\n\r\n')).status).toBe(400);
    expect((await raw(server.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nno colon here\r\n\r\n`)).status).toBe(400);
  });

  it('serves the page its private arguments only with the run token', async () => {
    expect((await get(server.port, '/args.json')).status).toBe(403);
    expect((await get(server.port, '/args.json', `Host: 127.0.0.1:${server.port}\r\n${TOKEN_HEADER}: ${'b'.repeat(64)}\r\n`)).status).toBe(403);
    const ok = await get(server.port, '/args.json', `Host: 127.0.0.1:${server.port}\r\n${TOKEN_HEADER}: ${'a'.repeat(64)}\r\n`);
    expect(ok).toMatchObject({ status: 200, body: '{"secret":1}' });
  });

  it('takes a report only with the token, its own Origin and a JSON type', async () => {
    const own = `http://127.0.0.1:${server.port}`;
    const token = 'a'.repeat(64);
    // The forgery: a page elsewhere (no preflight: text/plain), no token.
    expect((await post(server.port, { origin: 'http://evil.example', 'content-type': 'text/plain' }, FORGED)).status).toBe(403);
    expect((await post(server.port, { origin: own, 'content-type': 'application/json' }, FORGED)).status).toBe(403);
    expect((await post(server.port, { origin: own, 'content-type': 'application/json', [TOKEN_HEADER]: 'b'.repeat(64) }, FORGED)).status).toBe(403);
    expect((await post(server.port, { origin: own, 'content-type': 'application/json', [TOKEN_HEADER]: token.slice(1) }, FORGED)).status).toBe(403);
    expect((await post(server.port, { origin: 'http://evil.example', 'content-type': 'application/json', [TOKEN_HEADER]: token }, FORGED)).status).toBe(403);
    expect((await post(server.port, { 'content-type': 'application/json', [TOKEN_HEADER]: token }, FORGED)).status).toBe(403);
    expect((await post(server.port, { origin: own, 'content-type': 'text/plain', [TOKEN_HEADER]: token }, FORGED)).status).toBe(415);
    expect(reports).toEqual([]);
    expect(refused).toHaveLength(7);
    expect((await post(server.port, { origin: own, 'content-type': 'application/json', [TOKEN_HEADER]: token }, '[1]')).status).toBe(204);
    expect(reports).toEqual([[1]]);
  });

  it('still serves after all of the above', async () => {
    expect(await get(server.port, '/')).toMatchObject({ status: 200, body: '<p>ok</p>' });
  });
});

describe('files of a run: only our names, only inside --out, never through a link', () => {
  it('refuses names that are not the run files', () => {
    const out = mkdtempSync(path.join(tmp, 'out-'));
    for (const name of ['../../pwned-outside-out.txt', '/etc/passwd', 'samples.png/../../x', 'sub/samples.png', 'x.png', '', 'toString']) {
      expect(() => outputPath(out, name)).toThrow(/refusing to write/);
    }
    expect(outputPath(out, 'samples.png')).toBe(path.join(out, 'samples.png'));
    expect(() => checkPictures({ '../../pwned-outside-out.txt': new Uint8Array(1) })).toThrow(/picture named "..\/..\/pwned-outside-out.txt"; accepted names: samples.png/);
    expect(() => checkPictures({ 'metrics.json': new Uint8Array(1) })).toThrow(/accepted names/);
    expect(() => checkPictures({ 'loss.png': 'not bytes' })).toThrow(/not bytes/);
    expect(() => checkPictures(null)).toThrow(/no pictures/);
    expect(checkPictures({ 'loss.png': new Uint8Array(2) })).toEqual({ 'loss.png': new Uint8Array(2) });
  });

  it('never writes through a symbolic link at an entry, and leaves its target alone', () => {
    const out = mkdtempSync(path.join(tmp, 'out-'));
    const victim = path.join(tmp, 'victim.txt');
    writeFileSync(victim, 'keep me');
    symlinkSync(victim, path.join(out, 'samples.png'));
    mkdirSync(path.join(out, 'loss.png'));
    expect(() => writeOutput(out, 'samples.png', new Uint8Array([1, 2]))).toThrow(/symbolic link/);
    expect(() => writeOutput(out, 'loss.png', new Uint8Array([1, 2]))).toThrow(/not a regular file/);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
    expect(readlinkSync(path.join(out, 'samples.png'))).toBe(victim);
  });

  it('follows a link that is --out itself (the user chose it)', () => {
    const real = mkdtempSync(path.join(tmp, 'real-'));
    const link = path.join(tmp, `link-${path.basename(real)}`);
    symlinkSync(real, link);
    writeOutput(link, 'metrics.json', '{}');
    expect(readFileSync(path.join(real, 'metrics.json'), 'utf8')).toBe('{}');
  });
});

describe.skipIf(!haveChromium)('the report channel in Chromium', () => {
  it(
    'refuses reports forged against a running page, which still delivers its own result',
    async () => {
      const refused: string[] = [];
      const forgeries: Promise<number[][]>[] = [];
      let seen: { origin: string; tokenVisible: boolean } | undefined;
      const { result } = await runInBrowser<{ real: boolean }>('tests/fixtures/page-forgery-target.ts', {
        args: { waitMs: 1500 },
        onRefusedReport: (r) => refused.push(r),
        onMessage: (m) => {
          seen = m as typeof seen;
          const port = Number(new URL(seen!.origin).port);
          forgeries.push(
            (async () => [
              await forgeEverySeq(port, { origin: 'http://evil.example', 'content-type': 'text/plain' }),
              await forgeEverySeq(port, { origin: seen!.origin, 'content-type': 'application/json' }),
              await forgeEverySeq(port, { origin: seen!.origin, 'content-type': 'application/json', [TOKEN_HEADER]: '0'.repeat(64) }),
              [(await get(port, '/args.json')).status],
            ])(),
          );
        },
      });
      expect(result).toEqual({ real: true });
      expect(await Promise.all(forgeries)).toEqual([[[403], [403], [403], [403]]]);
      expect(refused).toHaveLength(600);
      // The secret is not left lying in the page's global scope for the entry's code.
      expect(seen?.tokenVisible).toBe(false);
    },
    120_000,
  );
});

/** Ports on 127.0.0.1 that a process tree (pid and its children) listens on, from /proc. */
function listeningPorts(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      for (const c of readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').split(/\s+/).filter(Boolean)) pids.push(Number(c));
    } catch { /* gone */ }
  }
  const inodes = new Set<string>();
  for (const p of pids) {
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) {
        try {
          const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`));
          if (m) inodes.add(m[1]!);
        } catch { /* closed meanwhile */ }
      }
    } catch { /* gone */ }
  }
  const ports: number[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address 0100007F:PORT (127.0.0.1), state 0A (LISTEN), inode in column 9.
    if (f.length > 9 && f[1]!.startsWith('0100007F:') && f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
  }
  return ports;
}

describe.skipIf(!haveChromium || !existsSync('/proc/net/tcp'))('wgflow train (browser runtime) under a forged report', () => {
  it(
    'keeps its own result and writes nothing outside --out',
    async () => {
      const base = mkdtempSync(path.join(tmp, 'train-'));
      const out = path.join(base, 'a', 'b', 'out');
      const fake = path.join(ROOT, 'tests', 'fixtures', 'cli-fake-jobs.ts');
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'wgflow.js'), 'train', '--steps', '60', '--option', 'slow=40', '--checkpoint-every', '20', '--runtime', 'browser', '--out', out, '--json'], {
        cwd: ROOT,
        env: { ...process.env, WGFLOW_JOBS: fake },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '', stderr = '';
      const statuses: number[] = [];
      let forging: Promise<void> | null = null;
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        // Once training runs, forge the report against every port the run listens on.
        if (!forging && c.includes('"type":"progress"')) {
          forging = (async () => {
            for (const port of listeningPorts(child.pid!)) {
              statuses.push(...(await forgeEverySeq(port, { origin: 'http://evil.example', 'content-type': 'text/plain' })));
              statuses.push(...(await forgeEverySeq(port, { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/json' })));
            }
          })();
        }
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      await forging;
      expect(code, stderr).toBe(0);
      expect(statuses.length).toBeGreaterThanOrEqual(2);
      expect(statuses.every((s) => s === 403)).toBe(true);
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      expect(result.type).toBe('result');
      expect(String(result.adapter)).not.toMatch(/evil/);
      expect(result.steps).toBe(60);
      expect(existsSync(path.join(base, 'pwned-outside-out.txt'))).toBe(false);
      expect(existsSync(path.join(base, 'a', 'pwned-outside-out.txt'))).toBe(false);
      expect(readdirSync(out).sort()).toEqual(['loss.png', 'metrics.json', 'model.safetensors', 'report.html', 'samples.png', 'trajectories.png']);
      expect(stderr).toMatch(/refused a report/);
    },
    150_000,
  );
});

describe('wgflow serve uses the same server', () => {
  it(
    'answers the request line that used to kill it with 400, then keeps serving',
    async () => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'wgflow.js'), 'serve', '--port', '0', '--json'], {
        cwd: ROOT,
        env: { ...process.env, WGFLOW_JOBS: path.join(ROOT, 'tests', 'fixtures', 'cli-fake-jobs.ts') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.setEncoding('utf8').on('data', (c: string) => {
            out += c;
            const m = /"url":"([^"]+)"/.exec(out);
            if (m) resolve(m[1]!);
          });
          child.on('exit', (code) => reject(new Error(`wgflow serve exited with ${code}`)));
        });
        const port = Number(new URL(url).port);
        expect((await get(port, '//[')).status).toBe(400);
        expect((await get(port, '/%2e%2e/%2e%2e/etc/passwd')).status).toBe(400);
        expect((await get(port, '/', `Host: evil.example:${port}\r\n`)).status).toBe(403);
        expect((await get(port, '/index.html', `Host: 127.0.0.1:${port}\r\n`, 'DELETE')).status).toBe(405);
        const page = await get(port, '/');
        expect(page.status).toBe(200);
        expect(page.body).toMatch(/wgflow serve/);
        expect((await get(port, '/args.json')).status).toBe(200);
        expect(child.exitCode).toBe(null);
      } finally {
        child.kill('SIGINT');
      }
    },
    120_000,
  );
});
