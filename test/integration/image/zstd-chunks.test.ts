import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { reusableZstdAvailable, zstdChunks } from '../../../src/image/zstd-chunks.ts';

/** Decodes with zstdChunks, copying each view (it is reused), and hashes input and output. */
async function decode(path: string): Promise<{ out: string; outBytes: number; input: string }> {
  const out = createHash('sha256');
  const input = createHash('sha256');
  let outBytes = 0;
  for await (const chunk of zstdChunks(path, { onInput: (c) => input.update(c) })) {
    out.update(chunk);
    outBytes += chunk.length;
  }
  return { out: out.digest('hex'), outBytes, input: input.digest('hex') };
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('zstdChunks (one reused output buffer)', () => {
  let dir: string;
  let parts: Buffer[];
  before(() => {
    execFileSync('zstd', ['--version']);
    dir = mkdtempSync(join(tmpdir(), 'reimage-zstd-chunks-'));
    // Data that does not compress to nothing, and a long zero run, so buffers fill many times.
    const random = createHash('sha256');
    const noise = Buffer.alloc(3 * 1024 * 1024);
    for (let at = 0; at < noise.length; at += 32) random.copy().update(String(at)).digest().copy(noise, at);
    parts = [noise, Buffer.alloc(5 * 1024 * 1024 + 777)];
    parts.forEach((part, i) => {
      writeFileSync(join(dir, `part${i}`), part);
      execFileSync('zstd', ['-q', '-3', '-f', join(dir, `part${i}`), '-o', join(dir, `part${i}.zst`)]);
    });
    // Two frames back to back, as `cat a.zst b.zst` makes: one stream to zstd.
    writeFileSync(
      join(dir, 'two-frames.zst'),
      Buffer.concat([readFileSync(join(dir, 'part0.zst')), readFileSync(join(dir, 'part1.zst'))]),
    );
  });
  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('is available on this Node (else the writer falls back to the slower stream)', () => {
    assert.equal(reusableZstdAvailable(), true);
  });

  it('decodes concatenated frames exactly and shows every input byte', async () => {
    const path = join(dir, 'two-frames.zst');
    const result = await decode(path);
    const whole = Buffer.concat(parts);
    assert.equal(result.outBytes, whole.length);
    assert.equal(result.out, sha(whole));
    assert.equal(result.input, sha(readFileSync(path)));
  });

  it('refuses trailing garbage and a truncated frame as REIMAGE_IMAGE_CORRUPT', async () => {
    const good = readFileSync(join(dir, 'part0.zst'));
    const cases = {
      garbage: Buffer.concat([good, Buffer.from('not zstd at all')]),
      truncated: good.subarray(0, good.length - 100),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      const path = join(dir, `${name}.zst`);
      writeFileSync(path, bytes);
      await assert.rejects(decode(path), (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_IMAGE_CORRUPT', name);
    }
  });
});
