import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { VerbContext } from '../../../src/cli/verb.ts';
import { writeVerb } from '../../../src/cli/verbs/write-verb.ts';
import { memoryLogger } from '../../../src/core/logger.ts';
import type { Progress } from '../../../src/core/progress.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { sha256File } from '../../../src/image/index.ts';
import {
  buildImageSet,
  dirtyFile,
  type ImageSet,
  MIB,
  readRange,
  removeDir,
  requireTools,
  sha256,
} from './image-fixture.ts';

function context(argv: readonly string[]): {
  ctx: VerbContext;
  out: () => string;
  progress: Progress[];
  log: string[];
} {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  const progress: Progress[] = [];
  const log = memoryLogger();
  const ctx: VerbContext = {
    argv,
    stdout,
    log,
    progressFor: () => Object.assign((p: Progress) => progress.push(p), { done() {} }),
    signal: new AbortController().signal,
  };
  return { ctx, out: () => Buffer.concat(chunks).toString('utf8'), progress, log: log.lines };
}

describe('reimage write', () => {
  let set: ImageSet;
  before(() => {
    requireTools();
    set = buildImageSet();
  });
  after(() => {
    if (set !== undefined) removeDir(set.dir);
  });

  it('writes with --sha256 --bmap --verify and says what it did', async () => {
    const target = dirtyFile(set.dir, 'cli-target.img', 16 * MIB);
    const digest = await sha256File(set.xz);
    const { ctx, out, progress } = context([set.xz, target, '--sha256', digest, '--bmap', set.bmap, '--verify']);
    assert.equal(await writeVerb.run(ctx), 0);
    assert.match(out(), /verified before writing/);
    assert.match(out(), /read-back: verified/);
    const phases = new Set(progress.map((p) => p.phase));
    assert.ok(phases.has('verify image') && phases.has('write') && phases.has('read back'), [...phases].join());
    assert.equal(sha256(readRange(target, 0, 64 * 1024)), sha256(set.rawBytes.subarray(0, 64 * 1024)));
  });

  it('says plainly when the image was not verified, and prints JSON with --json', async () => {
    const target = dirtyFile(set.dir, 'cli-json.img', 16 * MIB);
    const { ctx, out, log } = context([set.gzip, target, '--json']);
    assert.equal(await writeVerb.run(ctx), 0);
    const summary = JSON.parse(out()) as { written: boolean; imageSha256Verified: boolean; format: string };
    assert.equal(summary.written, true);
    assert.equal(summary.imageSha256Verified, false);
    assert.equal(summary.format, 'gzip');
    assert.ok(log.some((line) => /not verified/.test(line)));
  });

  it('rejects bad usage with REIMAGE_CLI_USAGE', async () => {
    for (const argv of [[], [set.raw], [set.raw, 'a', 'b'], [set.raw, 'x', '--image-size', '12k']]) {
      await assert.rejects(
        writeVerb.run(context(argv).ctx),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_CLI_USAGE',
      );
    }
  });
});
