import type { Verb } from '../verb.ts';
import { planVerb } from './plan-verb.ts';

/** Every verb of the `reimage` command, in the order `reimage --help` lists them. */
export const VERBS: readonly Verb[] = [planVerb];
