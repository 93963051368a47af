import type { WriteLog } from '../../src/demo/write-log.ts';
import { planReplay, type ReplayPlan } from '../../src/demo/write-log-replay.ts';
import { SeededRandom } from '../fuzz/seeded-random.ts';

/** A seeded cut anywhere in a recorded log, and the seeded drops and tear of that cut (the tests and bench:power). */
export function replayPlanForSeed(log: WriteLog, seed: number): ReplayPlan {
  const random = new SeededRandom(seed);
  return planReplay(log, random.below(log.entries.length + 1), random);
}

/** The seeded drops and tear of a cut at a chosen entry. */
export function replayPlanAt(log: WriteLog, cutIndex: number, seed: number): ReplayPlan {
  return planReplay(log, cutIndex, new SeededRandom(seed));
}
