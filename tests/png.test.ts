import { describe, expect, test } from 'vitest';
import { inflateSync } from 'node:zlib';
import { adler32, crc32, decodePngSize, defaultDeflate, encodePng, readPngChunks, storedDeflate } from '../io/png';
import { densityImage, formatTick, linePlot, niceTicks, scatterPlot, trajectoryPlot, viridis } from '../io/plot';

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
/** Byte equality without the deep-equality diff machinery (slow on large arrays). */
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

/** Scanlines as PNG filter type 0 lays them out: a 0 byte, then the row's RGBA bytes. */
function scanlines(w: number, h: number, rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array(h * (1 + 4 * w));
  for (let y = 0; y < h; y++) out.set(rgba.subarray(4 * w * y, 4 * w * (y + 1)), y * (1 + 4 * w) + 1);
  return out;
}

describe('checksums', () => {
  test('CRC-32 known values', () => {
    expect(crc32(ascii('IEND'))).toBe(0xae426082);
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  test('Adler-32 known values', () => {
    expect(adler32(ascii('Wikipedia'))).toBe(0x11e60398);
    expect(adler32(new Uint8Array(0))).toBe(1);
    const big = new Uint8Array(100000).fill(255);
    expect(adler32(big)).toBe(inflateAdler(big));
  });
});

/** Adler-32 as zlib computes it, read back from the trailer of node:zlib's own stream. */
function inflateAdler(data: Uint8Array): number {
  const z = defaultDeflate(data);
  return new DataView(z.buffer, z.byteOffset, z.byteLength).getUint32(z.length - 4);
}

describe('stored deflate', () => {
  test('inflates with node:zlib: empty, small, multi-block', () => {
    for (const len of [0, 1, 1000, 65535, 65536, 200003]) {
      const data = new Uint8Array(len);
      for (let i = 0; i < len; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
      const z = storedDeflate(data);
      expect(z.length).toBe(2 + 5 * Math.max(1, Math.ceil(len / 65535)) + len + 4);
      expect(same(inflateSync(z), data)).toBe(true);
    }
  });
});

describe('encodePng', () => {
  const w = 3, h = 2;
  const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 37) & 0xff);

  for (const [name, deflate] of [['node:zlib', defaultDeflate], ['stored', storedDeflate]] as const) {
    test(`${name}: chunks, IHDR, pixels round trip`, () => {
      const png = encodePng(w, h, rgba, deflate);
      expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      expect(decodePngSize(png)).toEqual({ width: 3, height: 2 });
      const chunks = readPngChunks(png);
      expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
      expect(Array.from(chunks[0]!.data)).toEqual([0, 0, 0, 3, 0, 0, 0, 2, 8, 6, 0, 0, 0]);
      expect(new Uint8Array(inflateSync(chunks[1]!.data))).toEqual(scanlines(w, h, rgba));
      expect(Array.from(png.subarray(png.length - 12))).toEqual([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    });
  }

  test('large image with both deflates gives the same pixels', () => {
    const W = 300, H = 200;
    const img = new Uint8Array(W * H * 4);
    for (let i = 0; i < img.length; i++) img[i] = (i % 7) * 30;
    const a = readPngChunks(encodePng(W, H, img));
    const b = readPngChunks(encodePng(W, H, img, storedDeflate));
    expect(same(inflateSync(a[1]!.data), scanlines(W, H, img))).toBe(true);
    expect(same(inflateSync(b[1]!.data), scanlines(W, H, img))).toBe(true);
  });

  test('errors', () => {
    expect(() => encodePng(0, 1, new Uint8Array(0))).toThrow(/width must be an integer in \[1, 2\^31 − 1\], got 0/);
    expect(() => encodePng(2, 2, new Uint8Array(15))).toThrow(/rgba has 15 bytes, expected width·height·4 = 16/);
    expect(() => decodePngSize(ascii('GIF89a............................'))).toThrow(/not a PNG/);
    const png = encodePng(1, 1, Uint8Array.from([1, 2, 3, 4]));
    png[20] ^= 1; // corrupt IHDR data
    expect(() => readPngChunks(png)).toThrow(/IHDR .* bad CRC/);
  });
});

describe('plots', () => {
  const px = (img: { width: number; rgba: Uint8Array }, x: number, y: number) => Array.from(img.rgba.subarray(4 * (y * img.width + x), 4 * (y * img.width + x) + 4));

  test('scatter: a point at the centre of explicit bounds lands on the centre pixel', () => {
    const img = scatterPlot({
      width: 101, height: 101, axes: false, bounds: { xmin: -1, xmax: 1, ymin: -1, ymax: 1 },
      series: [{ points: Float32Array.from([0, 0, 1, 1]), color: [255, 0, 0, 255], radius: 0.5 }],
    });
    expect(px(img, 50, 50)).toEqual([255, 0, 0, 255]);
    expect(px(img, 100, 0)).toEqual([255, 0, 0, 255]); // (1, 1) is the top-right corner: y grows upwards
    expect(px(img, 0, 100)).toEqual([255, 255, 255, 255]);
    expect(() => scatterPlot({ width: 10, height: 10, series: [], bounds: { xmin: 1, xmax: 1, ymin: 0, ymax: 1 } })).toThrow(/bounds/);
  });

  test('density image: row 0 of the grid is the bottom of the picture, viridis ends', () => {
    const img = densityImage({ width: 4, height: 4, gw: 2, gh: 2, values: Float32Array.from([0, 0, 1, 1]) });
    expect(px(img, 0, 3)).toEqual([...viridis(0), 255]);
    expect(px(img, 0, 0)).toEqual([...viridis(1), 255]);
    expect(viridis(0)).toEqual([68, 1, 84]);
    expect(viridis(1)).toEqual([253, 231, 37]);
    expect(() => densityImage({ width: 4, height: 4, gw: 3, gh: 2, values: new Float32Array(4) })).toThrow(/expected gw·gh/);
  });

  test('line (log y) and trajectory plots render and encode', () => {
    const loss = Array.from({ length: 500 }, (_, i) => 10 * Math.exp(-i / 100) + 0.01);
    const l = linePlot({ width: 320, height: 200, series: [{ y: loss, color: [0, 0, 200, 255] }], logY: true });
    expect(l.rgba.length).toBe(320 * 200 * 4);
    expect(l.rgba.some((v, i) => i % 4 === 2 && v === 200 && l.rgba[i - 2] === 0)).toBe(true);
    const steps = [Float32Array.from([0, 0, 1, 1]), Float32Array.from([1, 0, 2, 1]), Float32Array.from([2, 1, 2, 2])];
    const t = trajectoryPlot({ width: 120, height: 100, steps });
    expect(decodePngSize(encodePng(t.width, t.height, t.rgba))).toEqual({ width: 120, height: 100 });
    expect(() => trajectoryPlot({ width: 10, height: 10, steps: [new Float32Array(4), new Float32Array(2)] })).toThrow(/steps\[1\] has 2 values, expected 4/);
  });

  test('ticks are round numbers with short labels', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
    expect(niceTicks(-3.3, 3.3, 4)).toEqual([-2, 0, 2]);
    expect(formatTick(0.6000000000000001, 0.2)).toBe('0.6');
    expect(formatTick(20000, 5000)).toBe('20000');
    expect(formatTick(2e-5, 1e-5)).toBe('2e-5');
  });
});
