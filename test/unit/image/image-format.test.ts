import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFromMagic, unsupportedFormatFromMagic } from '../../../src/image/image-format.ts';

const bytes = (...values: number[]): Buffer => Buffer.from(values);

describe('formatFromMagic', () => {
  const cases: ReadonlyArray<[string, Buffer, ReturnType<typeof formatFromMagic>]> = [
    ['gzip', bytes(0x1f, 0x8b, 0x08, 0x00), 'gzip'],
    ['bzip2 level 9', Buffer.from('BZh91AY&SY'), 'bzip2'],
    ['bzip2 level 1', Buffer.from('BZh1'), 'bzip2'],
    ['"BZh" without a block-size digit is not bzip2', Buffer.from('BZhX'), undefined],
    ['xz', bytes(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00), 'xz'],
    ['zstd', bytes(0x28, 0xb5, 0x2f, 0xfd, 0x04), 'zstd'],
    ['an MBR boot sector', bytes(0xeb, 0x63, 0x90, 0x10), undefined],
    ['zeros', Buffer.alloc(16), undefined],
    ['too short for any magic', bytes(0x1f), undefined],
    ['empty', Buffer.alloc(0), undefined],
  ];
  for (const [name, head, expected] of cases) {
    it(name, () => assert.equal(formatFromMagic(head), expected));
  }
});

describe('unsupportedFormatFromMagic', () => {
  it('names containers people hand over by mistake', () => {
    assert.equal(unsupportedFormatFromMagic(Buffer.from('PK\x03\x04rest')), 'zip');
    assert.equal(unsupportedFormatFromMagic(bytes(0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3)), 'qcow2');
    assert.equal(unsupportedFormatFromMagic(bytes(0x04, 0x22, 0x4d, 0x18)), 'lz4');
    assert.equal(unsupportedFormatFromMagic(Buffer.alloc(8)), undefined);
  });
});
