/**
 * The page entry of the browser runtime: runs one CLI task (train, sample, eval, info) in headless
 * Chromium on the page's WebGPU device, streaming progress and checkpoints to the host through
 * ctx.post, and returns the result (pictures already drawn and PNG-encoded in the page).
 */
import type { PageContext } from '../browser/page-context';
import { getMethod } from '../cli/jobs';
import { runTask, type TaskArgs, type TaskMessage } from '../cli/tasks';

export default async function entry(args: TaskArgs, ctx: PageContext): Promise<unknown> {
  return runTask({ getMethod }, args, (m: TaskMessage) => ctx.post(m));
}
