import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { parseBlockMap } from '../../../src/image/block-map.ts';

const SHA256_A = 'a'.repeat(64);
const SHA1_B = 'b'.repeat(40);

/** A bmap document as bmaptool writes it, with its self-checksum filled in the way bmaptool does. */
function bmapXml(o: {
  version: string;
  imageSizeBytes: number;
  blocksCount: number;
  mappedBlocksCount: number;
  ranges: string;
  checksumType?: string;
  selfField?: 'BmapFileChecksum' | 'BmapFileSHA1';
}): string {
  const algorithm = o.selfField === 'BmapFileSHA1' ? 'sha1' : (o.checksumType ?? 'sha256');
  const zeros = '0'.repeat(algorithm === 'sha1' ? 40 : 64);
  const selfField = o.selfField ?? 'BmapFileChecksum';
  const xml = `<?xml version="1.0" ?>
<bmap version="${o.version}">
    <ImageSize> ${o.imageSizeBytes} </ImageSize>
    <BlockSize> 4096 </BlockSize>
    <BlocksCount> ${o.blocksCount} </BlocksCount>
    <MappedBlocksCount> ${o.mappedBlocksCount} </MappedBlocksCount>
${o.checksumType === undefined ? '' : `    <ChecksumType> ${o.checksumType} </ChecksumType>\n`}    <${selfField}> ${zeros} </${selfField}>
    <BlockMap>
${o.ranges}
    </BlockMap>
</bmap>
`;
  return xml.replace(zeros, createHash(algorithm).update(xml).digest('hex'));
}

function expectInvalid(xml: string, pattern: RegExp): void {
  assert.throws(
    () => parseBlockMap(xml, 'test.bmap'),
    (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BMAP_INVALID' && pattern.test(e.message),
  );
}

describe('parseBlockMap', () => {
  it('reads format 2.0 with sha256 range checksums, clipping the last block to the image end', () => {
    const map = parseBlockMap(
      bmapXml({
        version: '2.0',
        imageSizeBytes: 10 * 4096 + 100,
        blocksCount: 11,
        mappedBlocksCount: 4,
        checksumType: 'sha256',
        ranges: `<Range chksum="${SHA256_A}"> 0-2 </Range>\n<Range chksum="${SHA256_A}"> 10 </Range>`,
      }),
    );
    assert.equal(map.checksumType, 'sha256');
    assert.deepEqual(map.ranges, [
      { firstBlock: 0, lastBlock: 2, offsetBytes: 0, lengthBytes: 3 * 4096, checksum: SHA256_A },
      { firstBlock: 10, lastBlock: 10, offsetBytes: 40960, lengthBytes: 100, checksum: SHA256_A },
    ]);
    assert.equal(map.mappedBytes, 3 * 4096 + 100);
  });

  it('reads format 1.2 with legacy sha1 attributes and BmapFileSHA1', () => {
    const map = parseBlockMap(
      bmapXml({
        version: '1.2',
        imageSizeBytes: 8192,
        blocksCount: 2,
        mappedBlocksCount: 1,
        selfField: 'BmapFileSHA1',
        ranges: `<Range sha1="${SHA1_B}"> 1 </Range>`,
      }),
    );
    assert.equal(map.checksumType, 'sha1');
    assert.equal(map.ranges[0]?.checksum, SHA1_B);
  });

  it('reads format 1.4 with ChecksumType sha1', () => {
    const map = parseBlockMap(
      bmapXml({
        version: '1.4',
        imageSizeBytes: 8192,
        blocksCount: 2,
        mappedBlocksCount: 2,
        checksumType: 'sha1',
        ranges: `<Range chksum="${SHA1_B}"> 0-1 </Range>`,
      }),
    );
    assert.equal(map.checksumType, 'sha1');
  });

  it('accepts a map without range checksums and with no ranges at all', () => {
    const map = parseBlockMap(
      bmapXml({ version: '2.0', imageSizeBytes: 4096, blocksCount: 1, mappedBlocksCount: 0, ranges: '' }),
    );
    assert.deepEqual(map.ranges, []);
  });

  it('refuses a map edited after it was made (self-checksum)', () => {
    const xml = bmapXml({
      version: '2.0',
      imageSizeBytes: 8192,
      blocksCount: 2,
      mappedBlocksCount: 1,
      checksumType: 'sha256',
      ranges: `<Range chksum="${SHA256_A}"> 0 </Range>`,
    });
    expectInvalid(xml.replace('> 0 </Range>', '> 1 </Range>'), /changed or damaged/);
  });

  const base = { version: '2.0', imageSizeBytes: 4 * 4096, blocksCount: 4, checksumType: 'sha256' };
  const bad: ReadonlyArray<[string, Parameters<typeof bmapXml>[0], RegExp]> = [
    ['unknown major version', { ...base, version: '3.0', mappedBlocksCount: 0, ranges: '' }, /version/],
    [
      'overlapping ranges',
      { ...base, mappedBlocksCount: 4, ranges: '<Range> 0-1 </Range><Range> 1-2 </Range>' },
      /overlaps/,
    ],
    [
      'ranges out of order',
      { ...base, mappedBlocksCount: 2, ranges: '<Range> 2 </Range><Range> 0 </Range>' },
      /out of order/,
    ],
    ['a range past the end', { ...base, mappedBlocksCount: 2, ranges: '<Range> 3-4 </Range>' }, /past the image/],
    ['a malformed range', { ...base, mappedBlocksCount: 1, ranges: '<Range> x </Range>' }, /"N" or "N-M"/],
    ['a wrong mapped count', { ...base, mappedBlocksCount: 3, ranges: '<Range> 0 </Range>' }, /MappedBlocksCount/],
    ['a wrong blocks count', { ...base, blocksCount: 5, mappedBlocksCount: 0, ranges: '' }, /BlocksCount/],
    [
      'a malformed checksum',
      { ...base, mappedBlocksCount: 1, ranges: '<Range chksum="xyz"> 0 </Range>' },
      /malformed checksum/,
    ],
  ];
  for (const [name, input, pattern] of bad) {
    it(`refuses ${name}`, () => expectInvalid(bmapXml(input), pattern));
  }

  it('refuses text that is not a bmap', () => {
    expectInvalid('<html></html>', /no <bmap>/);
  });
});
