import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createProgressDisplay, describeProgress, formatBytes } from '../../../src/cli/progress-display.ts';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return { stream, text: () => chunks.join('') };
}

describe('progress display', () => {
  it('formats bytes with binary units', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(2 * 1024 ** 3), '2.0 GiB');
  });

  it('shows done/total, rate and ETA', () => {
    const text = describeProgress(
      { phase: 'write', done: 50 * 1024 ** 2, total: 100 * 1024 ** 2, unit: 'bytes' },
      5000,
    );
    assert.match(text, /write {2}50\.0 MiB \/ 100\.0 MiB \(50%\) {2}10\.0 MiB\/s {2}ETA 5s/);
  });

  it('prints few timestamped lines when not a TTY, plus the final state', () => {
    let nowMs = 0;
    const { stream, text } = capture();
    const display = createProgressDisplay(stream, 'lines', { now: () => nowMs, lineIntervalMs: 20_000 });
    for (let second = 0; second <= 60; second += 1) {
      nowMs = second * 1000;
      display({ phase: 'write', done: second, total: 60, unit: 'bytes' });
    }
    display.done();
    const lines = text().trim().split('\n');
    // first, at 20 s, 40 s, 60 s, and the final line
    assert.equal(lines.length, 5);
    assert.match(lines[0] ?? '', /^1970-01-01T00:00:00\.000Z write/);
  });

  it('shows counters named in bytes as bytes, and entries as counts', () => {
    const text = describeProgress(
      {
        phase: 'write',
        done: 0,
        unit: 'bytes',
        counters: { bytesWritten: 3 * 1024 ** 2, sizeBytes: 2048, entries: 7 },
      },
      0,
    );
    assert.match(text, /bytesWritten 3\.0 MiB {2}sizeBytes 2\.0 KiB {2}entries 7$/);
    assert.match(
      describeProgress({ phase: 'capture', done: 5, total: 10, unit: 'entries' }, 0),
      /5 entries \/ 10 entries/,
    );
  });

  it('writes one JSON object per line with --json', () => {
    const { stream, text } = capture();
    const display = createProgressDisplay(stream, 'json', { now: () => 0 });
    display({ phase: 'verify image', done: 1, total: 2, unit: 'bytes', counters: { bytesSkipped: 3 } });
    display.done();
    const records = text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { phase: string; final: boolean; counters: { bytesSkipped: number } });
    assert.equal(records.length, 2);
    assert.equal(records[0]?.phase, 'verify image');
    assert.equal(records[1]?.final, true);
    assert.equal(records[0]?.counters.bytesSkipped, 3);
  });
});
