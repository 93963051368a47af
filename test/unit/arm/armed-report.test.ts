import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doneFromReport } from '../../../src/arm/armed-report.ts';
import { partitionTableSha256 } from '../../../src/runner/index.ts';

const LBA0 = Buffer.alloc(512, 7);
const WHERE = { partition: 2, reportPath: '/var/lib/reimage/armed-report.json' };
const REPORT = {
  result: 'ok',
  mode: 'armed',
  finishedAt: '2026-12-02T01:02:03.000Z',
  attempt: 1,
  image: { format: 'raw', sha256: 'c'.repeat(64), sizeBytes: 1024 },
  partitionTableSha256: partitionTableSha256(LBA0),
  bytesWritten: 99,
};

describe('doneFromReport (status "done" from the armed run\'s report)', () => {
  it("takes a successful armed run's report whose table LBA 0 holds; extra fields are fine", () => {
    const verdict = doneFromReport(JSON.stringify(REPORT), LBA0, WHERE);
    assert.deepEqual(verdict, {
      ok: true,
      done: { ...WHERE, finishedAt: REPORT.finishedAt, attempt: 1, image: REPORT.image },
    });
  });

  it('ignores the boot code, bytes 0–439 (a boot loader installed since), but not the table', () => {
    const bootCode = Buffer.from(LBA0);
    bootCode.fill(0x90, 0, 440);
    assert.equal(doneFromReport(JSON.stringify(REPORT), bootCode, WHERE).ok, true);
    for (const byte of [440, 446, 510, 511]) {
      const table = Buffer.from(LBA0);
      table[byte] = 0;
      const verdict = doneFromReport(JSON.stringify(REPORT), table, WHERE);
      assert.ok(!verdict.ok && /not the one that run's commit wrote/.test(verdict.why), `byte ${byte}`);
    }
  });

  it('refuses what is not a successful armed run: not JSON, a plain run, a failure, no table digest', () => {
    const cases: [string, RegExp][] = [
      ['{', /not JSON/],
      [JSON.stringify({ ...REPORT, mode: 'plain' }), /mode/],
      [JSON.stringify({ ...REPORT, result: 'failed' }), /result/],
      [JSON.stringify({ ...REPORT, partitionTableSha256: undefined }), /partitionTableSha256/],
      [JSON.stringify({ ...REPORT, finishedAt: 'yesterday' }), /finishedAt/],
    ];
    for (const [text, why] of cases) {
      const verdict = doneFromReport(text, LBA0, WHERE);
      assert.ok(!verdict.ok && why.test(verdict.why), `${text}: ${verdict.ok ? 'taken' : verdict.why}`);
    }
  });
});
