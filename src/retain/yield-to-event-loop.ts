import { setImmediate } from 'node:timers/promises';

/** Entries handled between two yields in the synchronous per-entry loops. */
export const YIELD_EVERY = 128;

/**
 * Lets timers, signals and I/O callbacks run between batches of synchronous filesystem calls,
 * then honours an abort that arrived meanwhile.
 */
export async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  await setImmediate();
  signal?.throwIfAborted();
}
