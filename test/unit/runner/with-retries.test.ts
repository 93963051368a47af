import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode, exitCodeFor } from '../../../src/core/exit-codes.ts';
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
      failureCode: 'REIMAGE_RUN_WRITE_FAILED',
      failureWhat: 'x',
    } as const;
    return { journal, log, base };
  }

  const attempts = (journal: Journal): string[] =>
    journal.read().map((record) => `${record.stage}:${record.event}:${record.attempt}`);

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
    assert.deepEqual(attempts(journal), ['restore:start:1', 'restore:failed:1', 'restore:start:2', 'restore:done:2']);
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
      (error: unknown) =>
        error instanceof ReimageError && error.targetState === 'changed' && error.code === 'REIMAGE_RUN_WRITE_FAILED',
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

  it('does not retry a fatal error (retryable false in the registry), even after the disk changed', async () => {
    const { journal, base } = setup('fatal');
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        stage: 'restore',
        attempt: async () => {
          calls += 1;
          throw new ReimageError('REIMAGE_RUN_AFTER_HOOK_FAILED', 'hook exited 1', { targetTouched: true });
        },
      }),
      (error: unknown) => error instanceof ReimageError && error.code === 'REIMAGE_RUN_AFTER_HOOK_FAILED',
    );
    assert.equal(calls, 1);
    assert.deepEqual(attempts(journal), ['restore:start:1', 'restore:failed:1']);
  });

  it('retries a transient error of ours (retryable true in the registry)', async () => {
    const { base } = setup('transient');
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        stage: 'write',
        attempt: async () => {
          calls += 1;
          throw new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'EIO', { targetTouched: true });
        },
      }),
    );
    assert.equal(calls, 3);
  });

  it('stops on an abort during an attempt: no further attempt, the stage error kept, exit 130', async () => {
    const { journal, base } = setup('abort-during');
    const controller = new AbortController();
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        signal: controller.signal,
        stage: 'write',
        attempt: async () => {
          calls += 1;
          controller.abort();
          // What the writer throws on an abort once it has written (it knows it touched the disk).
          throw new ReimageError('REIMAGE_WRITE_ABORTED', 'The write was aborted.', { targetTouched: true });
        },
      }),
      (error: unknown) => {
        assert.ok(error instanceof ReimageError);
        assert.equal(error.code, 'REIMAGE_WRITE_ABORTED');
        assert.equal(error.targetState, 'changed');
        assert.equal(exitCodeFor(error), ExitCode.interrupted);
        return true;
      },
    );
    assert.equal(calls, 1);
    assert.deepEqual(attempts(journal), ['write:start:1', 'write:failed:1']);
  });

  it('stops on an abort that surfaces as a plain error: interrupted, not a write failure to retry', async () => {
    const { base } = setup('abort-plain');
    const controller = new AbortController();
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        signal: controller.signal,
        stage: 'restore',
        attempt: async () => {
          calls += 1;
          controller.abort();
          throw new Error('EIO after the abort');
        },
      }),
      (error: unknown) => error instanceof ReimageError && error.code === 'REIMAGE_RUN_INTERRUPTED',
    );
    assert.equal(calls, 1);
  });

  it('starts no attempt once aborted, and says it cannot know what an earlier run did', async () => {
    const { journal, base } = setup('abort-before');
    const controller = new AbortController();
    controller.abort();
    let calls = 0;
    await assert.rejects(
      withRetries({
        ...base,
        signal: controller.signal,
        stage: 'write',
        attempt: async () => {
          calls += 1;
          return 'written';
        },
      }),
      (error: unknown) =>
        error instanceof ReimageError && error.code === 'REIMAGE_RUN_INTERRUPTED' && error.targetState === 'unknown',
    );
    assert.equal(calls, 0);
    assert.deepEqual(attempts(journal), []);
  });

  it('waits retryDelayMs before each retry, and needs no journal (the armed run keeps its own on the disk)', async () => {
    const log = memoryLogger();
    const asked: number[] = [];
    let calls = 0;
    const result = await withRetries({
      stage: 'armed run',
      maxAttempts: 3,
      log,
      signal: undefined,
      failureCode: 'REIMAGE_ARMED_RUN_FAILED',
      failureWhat: 'x',
      retryDelayMs: (failedAttempt) => {
        asked.push(failedAttempt);
        return 1;
      },
      attempt: async () => {
        calls += 1;
        if (calls < 3) throw new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'EIO', { targetTouched: true });
        return 'done';
      },
    });
    assert.deepEqual(result, { value: 'done', attempts: 3 });
    assert.deepEqual(asked, [1, 2], 'asked after each failed attempt, not after the last');
    assert.ok(log.lines.some((line) => /armed run: trying again in 0 s \(attempt 2 of 3\)/.test(line)));
  });

  it('an abort during the wait stops at once, interrupted and touched', async () => {
    const controller = new AbortController();
    let calls = 0;
    await assert.rejects(
      withRetries({
        stage: 'armed run',
        maxAttempts: 3,
        log: memoryLogger(),
        signal: controller.signal,
        failureCode: 'REIMAGE_ARMED_RUN_FAILED',
        failureWhat: 'x',
        retryDelayMs: () => 60_000,
        attempt: async () => {
          calls += 1;
          setImmediate(() => controller.abort());
          throw new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'EIO', { targetTouched: true });
        },
      }),
      (error: unknown) =>
        error instanceof ReimageError && error.code === 'REIMAGE_RUN_INTERRUPTED' && error.targetState === 'changed',
    );
    assert.equal(calls, 1);
  });
});
