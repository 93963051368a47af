import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCode, exitCodeFor, targetStateOf } from '../../../src/core/exit-codes.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

describe('exitCodeFor', () => {
  const table: [string, unknown, number][] = [
    ['a usage error', new ReimageError('REIMAGE_CLI_USAGE', 'x'), ExitCode.invalidInput],
    ['a file named that is not there', new ReimageError('REIMAGE_CLI_FILE_NOT_FOUND', 'x'), ExitCode.invalidInput],
    ['an invalid plan', new ReimageError('REIMAGE_PLAN_INVALID', 'x'), ExitCode.invalidInput],
    ['an unreadable image', new ReimageError('REIMAGE_IMAGE_UNREADABLE', 'x'), ExitCode.invalidInput],
    ['a refusal before any change', new ReimageError('REIMAGE_IMAGE_DIGEST_MISMATCH', 'x'), ExitCode.refusedUntouched],
    [
      'a failure after the target changed',
      new ReimageError('REIMAGE_IMAGE_CORRUPT', 'x', { targetTouched: true }),
      ExitCode.failedTouched,
    ],
    [
      'invalid input discovered after the target changed',
      new ReimageError('REIMAGE_CLI_USAGE', 'x').withTargetTouched(),
      ExitCode.failedTouched,
    ],
    [
      'a failure whose thrower cannot know the target',
      new ReimageError('REIMAGE_RUN_WRITE_FAILED', 'x'),
      ExitCode.failedTouched,
    ],
    ['a read-back mismatch', new ReimageError('REIMAGE_WRITE_VERIFY_MISMATCH', 'x'), ExitCode.verifyMismatch],
    ['a plain Error (a bug)', new Error('boom'), ExitCode.internal],
    ['an abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), ExitCode.interrupted],
    [
      'an aborted write that had touched the target',
      new ReimageError('REIMAGE_WRITE_ABORTED', 'x', { targetTouched: true }),
      ExitCode.interrupted,
    ],
    ['an interrupted run', new ReimageError('REIMAGE_RUN_INTERRUPTED', 'x'), ExitCode.interrupted],
  ];
  for (const [name, error, expected] of table) {
    it(`maps ${name} to ${expected}`, () => assert.equal(exitCodeFor(error), expected));
  }
});

describe('what an error knows of the target', () => {
  const table: [string, unknown, string][] = [
    ['a refusal, by default', new ReimageError('REIMAGE_TARGET_BUSY', 'x'), 'untouched'],
    ['an error marked touched', new ReimageError('REIMAGE_TARGET_BUSY', 'x').withTargetTouched(), 'changed'],
    [
      'an abort the writer says came before any write',
      new ReimageError('REIMAGE_WRITE_ABORTED', 'x', { targetTouched: false }),
      'untouched',
    ],
    ['an abort nobody says anything about', new ReimageError('REIMAGE_WRITE_ABORTED', 'x'), 'unknown'],
    [
      'a failure class error nobody says anything about',
      new ReimageError('REIMAGE_RUN_RESTORE_FAILED', 'x'),
      'unknown',
    ],
    [
      'an explicit state',
      new ReimageError('REIMAGE_RETAIN_VERIFY_MISMATCH', 'x', { targetState: 'untouched' }),
      'untouched',
    ],
    ['a bug (not our error)', new TypeError('x is undefined'), 'unknown'],
  ];
  for (const [name, error, expected] of table) {
    it(`says ${expected} for ${name}`, () => assert.equal(targetStateOf(error), expected));
  }

  it('carries retryable from the registry', () => {
    assert.equal(new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'x').retryable, true);
    assert.equal(new ReimageError('REIMAGE_IMAGE_DIGEST_MISMATCH', 'x').retryable, false);
  });
});
