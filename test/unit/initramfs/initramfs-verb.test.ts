import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { VerbContext } from '../../../src/cli/verb.ts';
import { initramfsVerb } from '../../../src/cli/verbs/initramfs-verb.ts';
import { silentLogger } from '../../../src/core/logger.ts';

function context(argv: string[]): VerbContext {
  return {
    argv,
    stdout: new PassThrough(),
    log: silentLogger,
    progressFor: () => Object.assign(() => {}, { done() {} }),
    signal: new AbortController().signal,
  };
}

describe('reimage initramfs', () => {
  const usageCases: string[][] = [
    [],
    ['frobnicate'],
    ['build', '--out', '/tmp/x.img'],
    ['build', '--plan', 'p.yaml'],
    ['build', '--plan', 'p.yaml', '--out', 'x', '--compression', 'lz4'],
    ['build', '--plan', 'p.yaml', '--out', 'x', 'extra'],
    ['list'],
    ['build', '--plan', 'p.yaml', '--out', 'x', '--frob'],
  ];
  for (const argv of usageCases) {
    it(`refuses ${JSON.stringify(argv)} with a usage error`, async () => {
      await assert.rejects(initramfsVerb.run(context(argv)), { code: 'REIMAGE_CLI_USAGE' });
    });
  }

  it('has help with an example', () => {
    assert.match(initramfsVerb.help, /Example:\n {2}reimage initramfs build/);
  });
});
