/**
 * wgflow normalizing flows: bijections (forward = normalizing direction, both directions
 * differentiable), base distributions, the Flow object, architectures for the CLI methods, and
 * the flows family of the training driver (`flowTrainer`; train/driver.ts runs it) with
 * sampling/evaluation helpers.
 */
export type { Bijection, Forward, Inverse } from './bijection';
export { ParamStore, type HostParams } from './params';
export { MLP, MADE, glorot, type MLPOptions } from './nets';
export { AdditiveCoupling, AffineCoupling, couplingMask, type CouplingOptions, type MaskKind } from './coupling';
export { ActNorm } from './actnorm';
export { LULinear, DenseLinear, Permutation } from './linear';
export { Planar, planarRootKernel } from './planar';
export { Radial } from './radial';
export { MAFLayer, type MAFOptions } from './maf';
export { SplineCoupling, SplineAutoregressive, type SplineOptions, type SplineAROptions } from './spline';
export { StandardNormal, DiagNormal, type BaseDistribution } from './base';
export { Flow } from './flow';
export { inverse, luDecompose, randomOrthogonal } from './linalg';
export { buildFlow, resolveArch, DEFAULT_LAYERS, defaultLayers, NSF_VARIANTS, type FlowArch, type NsfVariant } from './build';
export { flowTrainer } from './train';
export { learningRate } from '../engine';
export { sampleFlow, evalFlow, flowFromCheckpoint, densityGrid, drawSamples, meanNll, readRunConfig, type FlowRunConfig } from './checkpoint';
export { validateData, type Standardize } from './data';
