import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { memoryLogger } from '../../../src/core/logger.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { Journal } from '../../../src/runner/journal.ts';
import { withRetries } from '../../../src/runner/with-retries.ts';

describe('withRetries (the runner failure policy)', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reimage-retries-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function setup(name: string) {
    const journal = new Journal(join(dir, `${name}.jsonl`));
    const log = memoryLogger();
    const base = {
      maxAttempts: 3,
      journal,
      log,
      signal: undefined,
      failureCode: 'REIMAGE_RUN_X_FAILED',
      failureWhat: 'x',
    };
    return { journal, log, base };
  }

  it('retries a failed stage and journals every attempt before acting', async () => {
    const { journal, base } = setup('retry');
    let calls = 0;
    const result = await withRetries({
      ...base,
      stage: 'restore',
      attempt: async () => {
        calls += 1;
        if (calls < 2) throw new Error('transient');
        return 'ok';
      },
    });
    assert.deepEqual(result, { value: 'ok', attempts: 2 });
    assert.deepEqual(
      journal.read().map((record) => `${record.stage}:${record.event}:${record.attempt}`),
      ['restore:start:1', 'restore:failed:1', 'restore:start:2', 'restore:done:2'],
    );
  });

  it('gives up after maxAttempts with an error marked as having touched the disk', async () => {
    const { base } = setup('give-up');
    let calls = 0;
    let cleanups = 0;
    await assert.rejects(
      withRetries({
        ...base,
        stage: 'write',
        attempt: async () => {
          calls += 1;
          throw new Error('disk I/O error');
        },
        afterFailure: async () => {
          cleanups += 1;
        },
      }),
      (error: unknown) => error instanceof ReimageError && error.targetTouched && error.code === 'REIMAGE_RUN_X_FAILED',
    );
    assert.equal(calls, 3);
    assert.equal(cleanups, 3);
  });

  it('does not retry a refusal made before the first byte changed, and keeps it untouched', async () => {
    const { base } = setup('refusal');
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        stage: 'write',
        refusalsAreFinal: true,
        attempt: async () => {
          calls += 1;
          throw new ReimageError('REIMAGE_TARGET_BUSY', 'mounted');
        },
      }),
      (error: unknown) => error instanceof ReimageError && !error.targetTouched && error.code === 'REIMAGE_TARGET_BUSY',
    );
    assert.equal(calls, 1);
  });

  it('marks a refusal touched when an earlier attempt may already have changed the disk', async () => {
    const { base } = setup('refusal-after-touch');
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        stage: 'write',
        refusalsAreFinal: true,
        attempt: async () => {
          calls += 1;
          if (calls === 1) throw new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'I/O error', { targetTouched: true });
          throw new ReimageError('REIMAGE_TARGET_BUSY', 'busy');
        },
      }),
      (error: unknown) => error instanceof ReimageError && error.targetTouched,
    );
  });
});
