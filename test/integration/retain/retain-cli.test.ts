import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { VerbContext } from '../../../src/cli/verb.ts';
import { retainVerb } from '../../../src/cli/verbs/retain-verb.ts';
import { memoryLogger } from '../../../src/core/logger.ts';
import { requireTools } from './ext4-loop.ts';

function context(argv: string[]): VerbContext & { output(): string } {
  const chunks: Buffer[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  const progress = Object.assign(() => {}, { done() {} });
  return {
    argv,
    stdout,
    log: memoryLogger(),
    progressFor: () => progress,
    signal: new AbortController().signal,
    output: () => Buffer.concat(chunks).toString('utf8'),
  };
}

describe('reimage retain capture / restore / verify / inspect', () => {
  let base = '';
  before(() => {
    requireTools();
    base = mkdtempSync(join(tmpdir(), 'reimage-retain-cli-'));
    mkdirSync(join(base, 'old', 'etc', 'ssh'), { recursive: true });
    writeFileSync(join(base, 'old', 'etc', 'machine-id'), 'abc\n');
    writeFileSync(join(base, 'old', 'etc', 'ssh', 'ssh_host_rsa_key'), 'KEY\n', { mode: 0o600 });
    writeFileSync(join(base, 'list'), '/etc/machine-id\n/etc/ssh/ssh_host_*\n?/etc/missing\n');
  });
  after(() => {
    if (base !== '') rmSync(base, { recursive: true, force: true });
  });

  /** Captures the old tree into its own bundle and restores it into its own new root: no test reuses another's. */
  async function roundTrip(name: string): Promise<{ bundle: string; newRoot: string; outputs: string[] }> {
    const bundle = join(base, `${name}.tar`);
    const newRoot = join(base, `${name}-new`);
    mkdirSync(join(newRoot, 'etc'), { recursive: true });
    const capture = context(['capture', '--root', join(base, 'old'), '--list', join(base, 'list'), '--out', bundle]);
    assert.equal(await retainVerb.run(capture), 0);
    const restore = context(['restore', '--root', newRoot, '--bundle', bundle]);
    assert.equal(await retainVerb.run(restore), 0);
    return { bundle, newRoot, outputs: [capture.output(), restore.output()] };
  }

  it('round-trips through the four sub-verbs', async () => {
    const { bundle, newRoot, outputs } = await roundTrip('four-verbs');
    const [captured, restored] = outputs;
    assert.match(captured ?? '', /captured 2 entries/);
    assert.match(captured ?? '', /optional, not present: \/etc\/missing/);
    assert.match(restored ?? '', /restored 2 entries/);

    const verify = context(['verify', '--root', newRoot, '--bundle', bundle, '--json']);
    assert.equal(await retainVerb.run(verify), 0);
    assert.equal(JSON.parse(verify.output()).ok, true);

    const inspect = context(['inspect', '--bundle', bundle]);
    assert.equal(await retainVerb.run(inspect), 0);
    assert.match(inspect.output(), /^-rw------- \?\(0\)\/\?\(0\) 4 .* \/etc\/ssh\/ssh_host_rsa_key$/m);
  });

  it('verify fails with REIMAGE_RETAIN_VERIFY_MISMATCH and lists the difference', async () => {
    const { bundle, newRoot } = await roundTrip('mismatch');
    writeFileSync(join(newRoot, 'etc', 'machine-id'), 'changed\n');
    const verify = context(['verify', '--root', newRoot, '--bundle', bundle]);
    await assert.rejects(retainVerb.run(verify), { code: 'REIMAGE_RETAIN_VERIFY_MISMATCH' });
    assert.match(verify.output(), /"\/etc\/machine-id": sha256: expected/);
  });

  const usage: Array<[string, string[]]> = [
    ['no sub-verb', []],
    ['an unknown sub-verb', ['explode']],
    ['a missing --root', ['restore', '--bundle', 'x']],
    ['a bad --owners', ['restore', '--root', '/', '--bundle', 'x', '--owners', 'by-magic']],
    ['an unknown option', ['inspect', '--bundle', 'x', '--frobnicate']],
  ];
  for (const [name, argv] of usage) {
    it(`refuses ${name} as a usage error`, async () => {
      await assert.rejects(retainVerb.run(context(argv)), { code: 'REIMAGE_CLI_USAGE' });
    });
  }

  it('says which list file it cannot read', async () => {
    const capture = context(['capture', '--root', base, '--list', join(base, 'nope'), '--out', join(base, 'b2.tar')]);
    await assert.rejects(retainVerb.run(capture), { code: 'REIMAGE_RETAIN_LIST_UNREADABLE' });
  });
});
