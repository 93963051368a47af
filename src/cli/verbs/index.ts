import type { Verb } from '../verb.ts';
import { armVerb, disarmVerb, statusVerb } from './arm-verb.ts';
import { demoVerb } from './demo-verb.ts';
import { imageVerb } from './image-verb.ts';
import { initramfsVerb } from './initramfs-verb.ts';
import { planVerb } from './plan-verb.ts';
import { retainVerb } from './retain-verb.ts';
import { runVerb } from './run-verb.ts';
import { runtimeVerb } from './runtime-verb.ts';
import { writeVerb } from './write-verb.ts';

/** Every verb of the `reimage` command, in the order `reimage --help` lists them. */
export const VERBS: readonly Verb[] = [
  demoVerb,
  planVerb,
  retainVerb,
  imageVerb,
  writeVerb,
  initramfsVerb,
  armVerb,
  disarmVerb,
  statusVerb,
  runtimeVerb,
  runVerb,
];
