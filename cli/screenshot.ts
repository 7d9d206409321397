/**
 * A PNG screenshot of a report.html with headless Chromium (for the README's docs/report.png):
 *
 *   node scripts/run-ts.mjs cli/screenshot.ts runs/otcfm-8gaussians-moons-0/report.html docs/report.png [width]
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launchChromium } from '../browser/chromium';

export async function screenshotReport(html: string, out: string, width = 1280): Promise<void> {
  const chromium = await launchChromium({ gpu: false });
  try {
    const page = await chromium.browser.newPage();
    await page.setViewport({ width, height: 900, deviceScaleFactor: 1 });
    await page.goto(pathToFileURL(path.resolve(html)).href, { waitUntil: 'load' });
    mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    await page.screenshot({ path: out as `${string}.png`, fullPage: true });
  } finally {
    await chromium.close();
  }
}

const [html, out, width] = process.argv.slice(2);
if (html && out && process.argv[1]?.endsWith('screenshot.ts')) {
  await screenshotReport(html, out, width ? Number(width) : undefined);
  console.log(`wrote ${out}`);
}
