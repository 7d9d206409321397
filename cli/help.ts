/** The --help texts (SPEC §4). */
import { DATA_MAX_ABS } from '../datasets/files';
import { MAX_BATCH, MAX_CFM_WIDTH, MAX_FLOW_LAYERS, MAX_FLOW_WIDTH, MAX_HIDDEN_LAYERS, MAX_POINTS, MAX_SOLVER_STEPS, MEMORY_BOUND } from './flags';
import { CFM_METHODS, FLOW_METHODS } from '../train/contract';

const GIB = MEMORY_BOUND / 2 ** 30;

export const DEFAULT_STEPS_SOFTWARE = 2000;
export const DEFAULT_STEPS_GPU = 20000;

export const MAIN_HELP = `wgflow — train flow-matching and normalizing-flow models on WebGPU (headless Chromium or Node)

usage: wgflow <command> [--flags]

commands:
  train     train a model, write checkpoint, pictures, metrics and report.html
  sample    draw samples from a checkpoint into .npy or .csv
  eval      W2, NPE and NLL of a checkpoint
  bench     run the benchmarks (bench/run.ts)
  info      the WebGPU adapter(s) available: vendor, architecture, software/hardware, limits, features
  serve     a page on 127.0.0.1 that trains in your browser and shows samples moving
  export    a checkpoint as a PyTorch state dict (torchcfm MLP; flows: docs/torch-flows.md)
  import    a torchcfm MLP state dict as a wgflow checkpoint (then sample / eval it)

  wgflow <command> --help   for the flags of a command

exit status: 0 success, 1 the run failed (the message says why), 2 usage or input error
  (a bad flag, path, data file or checkpoint: the message names it and what is accepted)
  --debug (anywhere) also prints the stack trace of usage and input errors
examples:
  wgflow train                                   # OT-CFM 8gaussians → moons in headless Chromium
  wgflow train --method icfm --source gaussian --runtime node --steps 500
  wgflow sample --checkpoint runs/otcfm-8gaussians-moons-0/model.safetensors --n 10000 --out x.npy
`;

export const TRAIN_HELP = `usage: wgflow train [--method M] [--source NAME] [--target NAME | --data FILE] [flags]

Trains one model and writes into --out: metrics.json, model.safetensors, samples.png,
trajectories.png (flow matching), density.png (2-D flows), loss.png, report.html.

model and data
  --method M           flow matching: ${CFM_METHODS.join(', ')}  (default otcfm)
                       normalizing flows: ${FLOW_METHODS.join(', ')}
  --source NAME        source distribution of flow matching (default 8gaussians); not used by
                       fm (its source is N(0, I)) nor by flows (their base is N(0, I))
  --target NAME        target distribution (default moons; flows: ffjord-moons), or images:
                       fashion-mnist[:CLASSES][@pcaK|@pixels] (flow matching; default model space
                       PCA 64, source N(0, I); --source fashion-mnist:7 --target fashion-mnist:9
                       translates class 7 to 9); reports image grids and classifier metrics
  --classes LIST       image targets: the classes kept, e.g. 7,9 (class numbers 0–9)
  --data FILE          a .npy or .csv matrix (rows are points) as the target instead of --target;
                       every value finite with |x| ≤ ${DATA_MAX_ABS.toExponential()} (else exit 2 naming the row and
                       column: rescale or standardise such data first)
                       datasets: wgflow info --datasets
  --condition none|labels
                       a conditional model (default none): labels = each point's class label as a
                       one-hot input; flow matching adds classifier-free guidance (the label dropped
                       with probability labelDropout, default 0.1: --option labelDropout=P) and pairs
                       points only within a class. Labels come from --label-column, or from a
                       labelled --target: 8gaussians, ffjord-8gaussians, paper-8gaussians(-r12) (mode),
                       moons (moon), checkerboard (square), pinwheel (arm), rings (ring)
  --label-column N     the column of --data (counted from 1) holding each row's class label, an
                       integer 0..K−1 (else exit 2 naming the row and value); the other columns are the data
  --sigma X            CFM σ (default 0.1; sbcfm and sf2m 1.0: the bridge's noise, sf2m's SDE diffusion)
  --ot exact|sinkhorn  OT plan of otcfm and sf2m (default exact; Sinkhorn reg 2σ² for sf2m) and sbcfm
                       (default sinkhorn)
  --fusion ops|layer|mlp|step
                       the engine's fusion level (default step: CFM's hand-fused step; flows: mlp);
                       every level gives the same numbers, it changes the kernels and their number
  --option KEY=VALUE   any other trainer option (repeatable; VALUE is parsed as JSON when it can be),
                       e.g. hidden=128,128 (at most ${MAX_HIDDEN_LAYERS} hidden layers; widths up to ${MAX_CFM_WIDTH} for flow
                       matching, ${MAX_FLOW_WIDTH} for flows), layers=N (flows, at most ${MAX_FLOW_LAYERS})
                       flow matching: ema=D keeps a moving average of the weights (decay D in [0, 1),
                       warmed up as min(D, (1+t)/(10+t)); 0 = none), and sample, eval and export use it;
                       schedule=cosine|constant the learning rate (flow matching: constant; flows: cosine)
                       nsf (neural spline flows): variant=coupling|autoregressive (default coupling),
                       bins=K spline bins (default 8, at most 64), bound=B splines on [−B, B] of the
                       standardised data, identity outside (default 3)

training
  --steps N            total steps. Default ${DEFAULT_STEPS_SOFTWARE} when WebGPU runs on the CPU (SwiftShader, no GPU
                       device on this machine: the demo then takes minutes), ${DEFAULT_STEPS_GPU} with a GPU
                       (the length of the torchcfm tutorials)
  --batch B            batch size (default 256; 1 to ${MAX_BATCH}, flow matching 2 or more)
  --lr X               Adam learning rate (default 1e-3)
  --seed S             random seed (default 0): same seed, same result, in either runtime
  --checkpoint-every N write model.safetensors every N steps (default: about 10 times per run) and at the end
  --resume             continue the run in --out from its last checkpoint up to --steps in total

runtime
  --runtime R          browser (default: headless Chromium, its WebGPU) or node (Dawn in this process)
  --chromium PATH      Chromium to use (default: $WGFLOW_CHROMIUM, else /usr/bin/chromium, …)
  --gpu auto|on|off    Chromium's GPU (Vulkan) flags; auto: on when a GPU device node exists

limits (checked before anything starts; exit 2)
  The estimated memory of a run (parameters with Adam state, activations, the OT plan's B×B
  matrices) must stay under ${GIB} GiB, and its largest GPU buffer within the adapter's
  maxStorageBufferBindingSize and maxBufferSize (wgflow info shows them).

output
  --out DIR            default runs/<method>-<source>-<target>-<seed>/; a folder (existing or new)
                       in a writable place on an ordinary disk (not under /proc, /sys or /dev)
  --json               JSON lines on stdout; the last one is the result object:
                       {"type":"result", method, source, target, steps, batch, seed, runtime, adapter,
                        w2, npe, nll, loss, ms_per_step, dispatches_per_step, out}
  -h, --help

Progress: a bar on a terminal (step, loss, steps/s, ETA), plain lines otherwise. Ctrl-C stops the
run, closes the browser, and keeps the last checkpoint (continue with --resume).
`;

export const SAMPLE_HELP = `usage: wgflow sample --checkpoint FILE [--n N] [--solver S] [--solver-steps K] [--out FILE.npy|.csv]

Draws N samples from a trained model and writes them as .npy (float32, N×dim) or .csv. A model
trained on images writes pixels in [−1, 1]; an unpaired translation (train --source fashion-mnist:7
--target fashion-mnist:9) writes the translations of the source class's first N test images
(default 500).

  --checkpoint FILE    a model.safetensors written by wgflow train (required); a checkpoint whose
                       configuration does not match its parameters, or with non-finite parameters
                       (a run that diverged), is refused (exit 2)
  --n N                number of samples (default 10000; at most ${MAX_POINTS})
  --solver S           ODE solver of flow matching: rk4 (default), euler, midpoint, dopri5; or sde
                       (sf2m only: Euler–Maruyama of dx = [v + s] dt + σ dW, --solver-steps steps)
  --solver-steps K     fixed solver steps (default 100, at most ${MAX_SOLVER_STEPS}; dopri5: the initial number)
  --seed S             seed of the source samples (default 0)
  --label L            conditional models: the label of every sample (e.g. 3), a list cycled through
                       (0,2,5), or all (the default: every class in turn); the output then has one
                       more, last column holding each sample's label
  --guidance W         conditional flow matching: v(x,t,∅) + W·(v(x,t,c) − v(x,t,∅)) (default 1, the
                       conditional field; 0 = unconditional; above 1 sharper classes)
  --out FILE           .npy or .csv (default samples.npy next to the checkpoint), in an existing
                       writable folder
  --runtime R          node (default) or browser
  --chromium PATH, --gpu auto|on|off   as for train
  --json               print the result as one JSON line
  -h, --help
`;

export const EVAL_HELP = `usage: wgflow eval --checkpoint FILE [--target NAME | --data FILE] [flags]

Evaluates a trained model: W2 (exact OT between 2 048 generated and 2 048 fresh target points),
NPE (flow matching), NLL in nats (flows). A model trained on images (--target fashion-mnist…) gets
its image metrics instead, as metrics.json has them: the evaluator's Fréchet distance and class
fractions, the conditional accuracy, or the translation's target-class fraction and pixel distances
(Node; flags --seed, --json, and --solver euler|midpoint|rk4 with --solver-steps K, default rk4 20:
fewer steps show how straight the learned paths are).

  --checkpoint FILE    a model.safetensors written by wgflow train (required; checked as for sample)
  --target NAME        target dataset (default: the one it was trained on)
  --data FILE          .npy or .csv target data instead (values finite, |x| ≤ ${DATA_MAX_ABS.toExponential()})
  --n N                points for W2 (default 2048; at most ${MAX_POINTS})
  --seed S             seed (default 0)
  --solver S, --solver-steps K   ODE solver for flow matching (default rk4, 100); sde for sf2m (W2 only)
  --label-column N     conditional models with --data: the column (from 1) of each row's label;
                       conditional models report per label the accuracy (the fraction of samples
                       whose nearest target point has the label asked for) and W2
  --guidance W         conditional flow matching: the guidance scale (default 1; see sample)
  --runtime R          node (default) or browser
  --chromium PATH, --gpu auto|on|off   as for train
  --json               print the result as one JSON line
  -h, --help
`;

export const BENCH_HELP = `usage: wgflow bench [flags of bench/run.ts]

Runs the benchmark suite bench/run.ts and prints markdown tables. Every flag is passed to the suite
unchanged; it validates them (exit status 2 on a bad one). Among them:

  --runtime node|browser|both   where to run (default both, one after the other)
  --json               JSON (one object per line)
  --quick              fewer sizes and repetitions
  --suite kernels|train|all     matmul kernel variants, the MLP + Adam step, or both (default all)
  --peers              wgflow at each fusion level against jax-js and tfjs-webgpu, measured in the
                       same run on the same adapter, interleaved: matmul 256–2048, the MLP + Adam
                       step at batch 256 and 4096 (SiLU, SELU), dispatches and submits per step for
                       every engine; then wgflow's own targets (flows steps at each level, RK4
                       sampling fused vs ops, the OT-CFM exact step; --no-targets skips them); every
                       issue 10 target marked met or not, and a PNG chart
  --fusion ops,layer,mlp   the fusion levels the MLP step (and the flows steps) are timed at
  --chart FILE|none    where --peers writes its chart (default bench-peers.png)
  --profile            per-kernel GPU time (timestamp queries) of a training step at each fusion level
  --sizes, --batches, --acts silu,selu, --reps N, --steps N, --peer-list jax-js,tfjs   what to run
  -h, --help
`;

export const INFO_HELP = `usage: wgflow info [--runtime node|browser|all] [--json] [--datasets]

Prints the WebGPU adapter of each runtime: vendor, architecture, software or hardware, limits and
features. Exit status 1 when no runtime has an adapter.

  --runtime R          node, browser or all (default all)
  --chromium PATH, --gpu auto|on|off   as for train
  --datasets           list the dataset names accepted by --source and --target
  --json               one JSON object per runtime
  -h, --help
`;

export const SERVE_HELP = `usage: wgflow serve [--method M] [--source NAME] [--target NAME] [--steps N] [--port P] [flags]

Serves a page on http://127.0.0.1:PORT/ that trains in your browser (WebGPU) and redraws the
samples about twice a second while it trains. Open the printed URL in Chrome/Edge (or any browser
with WebGPU). Ctrl-C stops the server.

  --method, --source, --target, --batch, --lr, --seed, --sigma, --ot, --option   as for train
  --steps N            default 20000 (stop any time)
  --port P             port on 127.0.0.1 (default 8787; 0 picks a free one)
  --data FILE          a .npy or .csv target (sent to the page)
  -h, --help
`;
