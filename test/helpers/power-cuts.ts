import { POWER_CUT_MARKERS, type PowerCut } from '../../src/demo/power-cut-trial.ts';
import { SeededRandom } from '../fuzz/seeded-random.ts';

/** The cut a seed draws: a step of the armed run, and up to 2 s into it (the tests and bench:power). */
export function cutForSeed(seed: number): PowerCut {
  const random = new SeededRandom(seed);
  const marker = POWER_CUT_MARKERS[random.uint32() % POWER_CUT_MARKERS.length] ?? 'step 2/6 write';
  return { marker, delayMs: random.uint32() % 2000 };
}
