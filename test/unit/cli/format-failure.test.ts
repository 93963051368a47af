import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFailure } from '../../../src/cli/main.ts';
import { ExitCode, exitCodeFor } from '../../../src/core/exit-codes.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

const STACK_FRAME = /^\s+at /m;

function failure(error: unknown, o: { changesTarget?: boolean; signalName?: string } = {}): string {
  return formatFailure({
    error,
    exitCode: o.signalName === undefined ? exitCodeFor(error) : ExitCode.interrupted,
    command: 'write',
    changesTarget: o.changesTarget ?? true,
    signalName: o.signalName,
  }).join('\n');
}

describe('what the CLI prints for a failure', () => {
  it('prints a bug with its stack, how to report it, and an unknown target (exit 1)', () => {
    const text = failure(new TypeError("Cannot read properties of undefined (reading 'x')"));
    assert.match(text, /^reimage write: internal error: TypeError: Cannot read properties/);
    assert.match(text, STACK_FRAME);
    assert.match(text, /^This is a bug in reimage\. Please report it/m);
    assert.match(
      text,
      /reimage: internal error; the target may have been changed: check it before relying on it\. \(exit 1\)$/,
    );
  });

  it('says untouched for a bug in a command that never writes a target', () => {
    assert.match(failure(new Error('boom'), { changesTarget: false }), /internal error; the target is untouched/);
  });

  it('prints a foreseen error without a stack: code, message, evidence, state', () => {
    const text = failure(
      new ReimageError('REIMAGE_TARGET_TOO_SMALL', 'The image is larger than the target.', {
        evidence: { path: '/dev/sdz', actual: 10 },
      }),
    );
    assert.doesNotMatch(text, STACK_FRAME);
    assert.deepEqual(text.split('\n'), [
      'reimage: error REIMAGE_TARGET_TOO_SMALL: The image is larger than the target.',
      '  path: /dev/sdz',
      '  actual: 10',
      'reimage: refused; the target is untouched: nothing was changed. (exit 3)',
    ]);
  });

  it('escapes control characters and newlines from untrusted input in the message, cause and evidence', () => {
    const hostile = '/etc/evil\u001b]0;PWNED\u0007\nreimage: refused; the target is untouched';
    const text = failure(
      new ReimageError('REIMAGE_RETAIN_ROOT_CONFLICT', `The root has ${hostile} as a directory.`, {
        evidence: { path: hostile },
        cause: new Error(`EEXIST: ${hostile}`),
      }),
    );
    const raw = [...text].filter((c) => {
      const code = c.charCodeAt(0);
      return (code < 0x20 && c !== '\n') || (code >= 0x7f && code <= 0x9f);
    });
    assert.deepEqual(raw, [], 'no raw control character');
    const lines = text.split('\n');
    assert.equal(lines.length, 4, 'a newline in a name forges no line');
    assert.match(lines[0] ?? '', /evil\\u001b\]0;PWNED\\u0007\\nreimage: refused/);
  });

  it("gives each state from the error's own knowledge, whatever the exit code", () => {
    const changed = new ReimageError('REIMAGE_TARGET_WRITE_FAILED', 'EIO', { targetTouched: true });
    assert.match(failure(changed), /failed; the target was changed\. \(exit 4\)$/);
    const unknown = new ReimageError('REIMAGE_RUN_WRITE_FAILED', 'x');
    assert.match(failure(unknown), /failed; the target may have been changed.*\(exit 4\)$/);
    const mismatch = new ReimageError('REIMAGE_WRITE_VERIFY_MISMATCH', 'x', { targetTouched: true });
    assert.match(failure(mismatch), /verification found differences; the target was changed\. \(exit 5\)$/);
  });

  it('on a signal: one line naming what was interrupted, the state the error knows, no stack (exit 130)', () => {
    const untouched = new ReimageError('REIMAGE_WRITE_ABORTED', 'aborted', { targetTouched: false });
    assert.deepEqual(failure(untouched, { signalName: 'SIGINT' }).split('\n'), [
      'reimage write: interrupted by SIGINT. aborted',
      'reimage: interrupted; the target is untouched: nothing was changed. (exit 130)',
    ]);
    const touched = new ReimageError('REIMAGE_WRITE_ABORTED', 'aborted', { targetTouched: true });
    assert.match(failure(touched, { signalName: 'SIGTERM' }), /interrupted; the target was changed\. \(exit 130\)$/);
    const plain = Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
    const text = failure(plain, { signalName: 'SIGINT' });
    assert.doesNotMatch(text, STACK_FRAME);
    assert.match(text, /^reimage write: interrupted by SIGINT\.$/m);
    assert.match(text, /interrupted; the target may have been changed/);
  });
});
