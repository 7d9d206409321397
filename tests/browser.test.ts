/**
 * The headless-Chromium runtime: finding Chromium, the static server, bundling, and running page
 * entries (messages, results, errors, WebGPU compute). One browser session is shared by most
 * tests because Chromium takes a while to start on a 2-core machine; runInBrowser itself (which
 * launches and closes its own browser) is exercised once.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleForBrowser } from '../browser/bundle';
import { CHROMIUM_CANDIDATES, findChromium } from '../browser/chromium';
import type { AdapterReport } from '../browser/page-context';
import { openBrowserSession, runInBrowser, type BrowserSession } from '../browser/run-in-page';
import { startStaticServer } from '../browser/server';

const TIMEOUT = 60_000;
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;

function request(url: string, init: { method?: string; body?: string; host?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: u.pathname, agent: false, method: init.method ?? 'GET', headers: { ...init.headers, ...(init.host ? { host: init.host } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('findChromium', () => {
  it('rejects a bad explicit path, naming it', () => {
    expect(() => findChromium('/nonexistent/chromium-xyz')).toThrow(/"\/nonexistent\/chromium-xyz" does not exist/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wgflow-test-'));
    try {
      const notExec = path.join(dir, 'chromium');
      writeFileSync(notExec, '#!/bin/sh\n');
      chmodSync(notExec, 0o644);
      expect(() => findChromium(notExec)).toThrow(/is not an executable file/);
      expect(() => findChromium(dir)).toThrow(/is not an executable file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a bad WGFLOW_CHROMIUM, naming the variable', () => {
    const saved = process.env.WGFLOW_CHROMIUM;
    process.env.WGFLOW_CHROMIUM = '/nonexistent/from-env';
    try {
      expect(() => findChromium()).toThrow(/WGFLOW_CHROMIUM="\/nonexistent\/from-env" does not exist/);
      // An explicit path wins over the variable.
      if (existsSync('/bin/sh')) expect(findChromium('/bin/sh')).toBe('/bin/sh');
    } finally {
      if (saved === undefined) delete process.env.WGFLOW_CHROMIUM;
      else process.env.WGFLOW_CHROMIUM = saved;
    }
  });

  it.skipIf(!haveChromium)('finds the installed Chromium', () => {
    expect(existsSync(findChromium())).toBe(true);
  });
});

describe('startStaticServer', () => {
  it('serves in-memory files with content types and takes JSON reports', async () => {
    const reports: unknown[] = [];
    const server = await startStaticServer(
      { '/index.html': '<p>hi</p>', 'app.js': 'export {}', '/img.png': new Uint8Array([137, 80, 78, 71]) },
      { report: { token: 'secret', onReport: (b) => reports.push(b) } },
    );
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
      const root = await request(server.url);
      expect(root).toMatchObject({ status: 200, body: '<p>hi</p>' });
      expect(root.type).toMatch(/^text\/html/);
      expect((await request(`${server.url}app.js`)).type).toMatch(/^text\/javascript/);
      const png = await request(`${server.url}img.png`);
      expect(png.type).toBe('image/png');
      expect((await request(`${server.url}missing.js`)).status).toBe(404);
      const own = { origin: server.url.slice(0, -1), 'content-type': 'application/json', 'x-wgflow-token': 'secret' };
      expect((await request(`${server.url}__report`, { method: 'POST', body: '[{"a":1}]', headers: own })).status).toBe(204);
      expect((await request(`${server.url}__report`, { method: 'POST', body: '{nope', headers: own })).status).toBe(400);
      expect(reports).toEqual([[{ a: 1 }]]);
      // DNS-rebinding guard: a foreign Host header is refused.
      expect((await request(server.url, { host: `evil.example:${server.port}` })).status).toBe(403);
    } finally {
      await server.close();
    }
  });

  it('listens on 127.0.0.1 only', async () => {
    const server = await startStaticServer({ '/index.html': 'x' });
    try {
      expect(new URL(server.url).hostname).toBe('127.0.0.1');
      // Any non-loopback IPv4 address of this machine must refuse the connection.
      const external = Object.values(os.networkInterfaces())
        .flat()
        .filter((a): a is os.NetworkInterfaceInfo => !!a && a.family === 'IPv4' && !a.internal)
        .map((a) => a.address);
      for (const addr of external) {
        await expect(request(`http://${addr}:${server.port}/`)).rejects.toThrow(/ECONNREFUSED/);
      }
      await expect(request(`http://[::1]:${server.port}/`)).rejects.toThrow(/ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH/);
      expect((await request(server.url)).status).toBe(200);
    } finally {
      await server.close();
    }
    // Closed means closed.
    await expect(request(server.url)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('bundleForBrowser', () => {
  it('names the import chain that reaches a Node built-in', async () => {
    await expect(bundleForBrowser('tests/fixtures/page-uses-node.ts')).rejects.toThrow(
      'tests/fixtures/page-uses-node.ts → tests/fixtures/page-uses-node-helper.ts → node:fs',
    );
  });

  it("honours a package's browser map that sends a built-in to false (tfjs-core's util)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wgflow-browser-map-'));
    try {
      mkdirSync(path.join(dir, 'pkg'));
      writeFileSync(path.join(dir, 'pkg', 'package.json'), JSON.stringify({ name: 'bm', version: '1.0.0', main: 'index.js', browser: { util: false } }));
      writeFileSync(path.join(dir, 'pkg', 'index.js'), "import util from 'util';\nexport const kind = typeof util;\n");
      writeFileSync(path.join(dir, 'entry.js'), "import { kind } from './pkg/index.js';\nexport default () => kind;\n");
      const code = await bundleForBrowser(path.join(dir, 'entry.js'));
      expect(code).not.toMatch(/from ["']util["']/);
      // A built-in that no map sends away is still refused, naming the chain.
      writeFileSync(path.join(dir, 'pkg', 'package.json'), JSON.stringify({ name: 'bm', version: '1.0.0', main: 'index.js' }));
      await expect(bundleForBrowser(path.join(dir, 'entry.js'))).rejects.toThrow(/imports Node built-in[\s\S]*pkg\/index\.js → util/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bundles page code into one ESM file with an inline source map', async () => {
    const code = await bundleForBrowser('tests/fixtures/page-echo.ts');
    expect(code).toMatch(/export\s*\{/);
    expect(code).not.toMatch(/from\s*["']\.\.?\//); // no relative imports left
    expect(code).toMatch(/\/\/# sourceMappingURL=data:application\/json;base64,/);
  });
});

describe.skipIf(!haveChromium)('running entries in Chromium', () => {
  let session: BrowserSession;
  beforeAll(async () => {
    session = await openBrowserSession();
  }, TIMEOUT);
  afterAll(async () => {
    await session?.close();
  }, TIMEOUT);

  it(
    'echoes args, delivers messages in order (bytes and NaN intact) and reports the adapter',
    async () => {
      const messages: unknown[] = [];
      const logs: string[] = [];
      const args = { hello: 'page', n: 3, weights: new Float32Array([0.5, -2, Number.POSITIVE_INFINITY]) };
      const { result, adapter } = await session.run<{ echo: unknown; hasGpu: boolean; secure: boolean; adapter: AdapterReport }>(
        'tests/fixtures/page-echo.ts',
        { args, onMessage: (m) => messages.push(m), onLog: (l) => logs.push(l), timeoutMs: TIMEOUT },
      );
      expect(messages).toEqual([
        { i: 0, text: 'first' },
        { i: 1, text: 'second' },
        { i: 2, text: 'third', bytes: new Uint8Array([137, 80, 78, 71]), loss: Number.NaN },
      ]);
      expect(result.echo).toEqual(args);
      expect((result.echo as typeof args).weights).toBeInstanceOf(Float32Array);
      expect(result.hasGpu).toBe(true);
      expect(result.secure).toBe(true);
      expect(logs).toContain('page-echo posted 3 messages');

      // What Chromium reports here (no GPU): Google's SwiftShader, a software adapter. The runner's
      // own report (the second return value) agrees with the entry's: both are the engine's
      // AdapterReport of the same adapter (one type, engine/backend.ts).
      expect(adapter).toEqual(result.adapter);
      if (!session.gpu) {
        expect(result.adapter).toMatchObject({ runtime: 'browser', vendor: 'google', architecture: 'swiftshader', kind: 'software' });
        expect(result.adapter.features).toContain('timestamp-query');
        expect(result.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
      } else {
        expect(result.adapter.architecture).not.toBe('swiftshader');
      }
    },
    TIMEOUT,
  );

  it(
    'keeps order for a burst of 2000 messages',
    async () => {
      const seen: number[] = [];
      await session.run('tests/fixtures/page-echo.ts', {
        args: { burst: 2000 },
        onMessage: (m) => seen.push((m as { i: number }).i),
        timeoutMs: TIMEOUT,
      });
      expect(seen).toEqual(Array.from({ length: 2003 }, (_, i) => i));
    },
    TIMEOUT,
  );

  it(
    'runs a WebGPU compute kernel and reads the result back',
    async () => {
      const { result } = await session.run<{ input: Float32Array; output: Float32Array; adapter: AdapterReport }>(
        'tests/fixtures/page-compute.ts',
        { args: { n: 1000 }, timeoutMs: TIMEOUT },
      );
      expect(result.output).toBeInstanceOf(Float32Array);
      expect(result.output.length).toBe(1000);
      for (let i = 0; i < 1000; i++) {
        const x = Math.fround(i * 0.5 - 3);
        expect(result.input[i]).toBe(x);
        if (result.output[i] !== 2 * x) expect.fail(`output[${i}] = ${result.output[i]}, expected ${2 * x}`);
      }
    },
    TIMEOUT,
  );

  it(
    'rejects with the page message and a source-mapped stack for an unhandled rejection',
    async () => {
      const run = session.run('tests/fixtures/page-throw.ts', { args: { mode: 'unhandled-rejection' }, timeoutMs: TIMEOUT });
      await expect(run).rejects.toThrow(/unhandled promise rejection in the browser: rejected and never awaited/);
      await expect(run).rejects.toThrow(/page stack:\n[^]*tests\/fixtures\/page-throw\.ts:\d+:\d+/);
    },
    TIMEOUT,
  );

  it(
    'times out with a clear message and keeps the session usable',
    async () => {
      await expect(session.run('tests/fixtures/page-throw.ts', { args: { mode: 'hang' }, timeoutMs: 1500 })).rejects.toThrow(
        /tests\/fixtures\/page-throw\.ts did not finish within 1500 ms \(timeoutMs\)/,
      );
      const { result } = await session.run<{ echo: unknown }>('tests/fixtures/page-echo.ts', { args: 7, timeoutMs: TIMEOUT });
      expect(result.echo).toBe(7);
    },
    TIMEOUT,
  );
});

describe.skipIf(!haveChromium)('runInBrowser (own browser)', () => {
  it(
    'rejects with the thrown message and a stack pointing at the .ts source, and cleans up',
    async () => {
      const before = new Set(listProfiles());
      let caught: Error | undefined;
      try {
        await runInBrowser('tests/fixtures/page-throw.ts', { args: { mode: 'throw' }, timeoutMs: TIMEOUT });
      } catch (e) {
        caught = e as Error;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(caught!.message).toMatch(/^tests\/fixtures\/page-throw\.ts threw in the browser: kaboom from page-throw\npage stack:\n/);
      expect(caught!.message).toMatch(/at explodeDeepInside \(tests\/fixtures\/page-throw\.ts:\d+:\d+\)/);
      // The temporary profile is gone once runInBrowser settles.
      expect(listProfiles().filter((p) => !before.has(p))).toEqual([]);
    },
    TIMEOUT,
  );
});

/** Temporary Chromium profile dirs (launchChromium's) that exist right now. */
function listProfiles(): string[] {
  return readdirSync(os.tmpdir()).filter((n) => n.startsWith('wgflow-chromium-'));
}
