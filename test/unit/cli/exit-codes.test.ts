import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCode, exitCodeFor } from '../../../src/cli/exit-codes.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

describe('exitCodeFor', () => {
  const table: [string, unknown, number][] = [
    ['a usage error', new ReimageError('REIMAGE_CLI_USAGE', 'x'), ExitCode.invalidInput],
    ['an invalid plan', new ReimageError('REIMAGE_PLAN_INVALID', 'x'), ExitCode.invalidInput],
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
    ['a read-back mismatch', new ReimageError('REIMAGE_WRITE_VERIFY_MISMATCH', 'x'), ExitCode.verifyMismatch],
    ['a plain Error (a bug)', new Error('boom'), ExitCode.internal],
    [
      'an unknown option (parseArgs)',
      Object.assign(new TypeError('Unknown option'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }),
      ExitCode.invalidInput,
    ],
    ['an abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), ExitCode.interrupted],
  ];
  for (const [name, error, expected] of table) {
    it(`maps ${name} to ${expected}`, () => assert.equal(exitCodeFor(error), expected));
  }
});
