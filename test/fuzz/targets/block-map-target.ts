import { createHash } from 'node:crypto';
import { parseBlockMap } from '../../../src/image/block-map.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';

/** A bmap document as bmaptool writes it, its self-checksum filled in (as in test/unit/image/block-map.test.ts). */
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
<!-- This file contains the block map for an image file -->
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

/** Refills the map's own digest after a mutation, so the fuzzer reaches past the self-check. */
function fixSelfChecksum(xml: string): string {
  const match = /<(BmapFileChecksum|BmapFileSHA1)>([^<]*)<\/\1>/.exec(xml);
  const stored = match?.[2]?.trim();
  if (match === null || stored === undefined || stored === '') return xml;
  const typeText = /<ChecksumType>\s*([^<\s]*)\s*<\/ChecksumType>/.exec(xml)?.[1]?.toLowerCase();
  const algorithm = match[1] === 'BmapFileSHA1' || typeText === 'sha1' ? 'sha1' : 'sha256';
  const zeros = '0'.repeat(stored.length);
  const zeroed = xml.replace(stored, zeros);
  try {
    return zeroed.replace(zeros, createHash(algorithm).update(zeroed).digest('hex'));
  } catch {
    return xml;
  }
}

const NUMBERS = ['0', '1', '-1', '4095', '4097', '511', '1023', '9007199254740993', '1152921504606846976', '1e3', ''];
const RANGE_TEXTS = ['5-3', '0-0', ' 1 - 2 ', '3-', '-', '1-2-3', 'a', '', '0-99999999999999999', '10-11', '1,2'];
const INSERTS = [
  '<Range> 0 </Range>',
  '<Range chksum="abc"> 1 </Range>',
  `<Range sha1="${'b'.repeat(40)}"> 2 </Range>`,
  '<Range><Range> 3 </Range></Range>',
  '<Range><![CDATA[ 4 ]]></Range>',
  '<Range/>',
  '<BlockMap/>',
  '<ChecksumType>md5</ChecksumType>',
  '<ChecksumType>sha1</ChecksumType>',
  '<ImageSize>1</ImageSize>',
  '<BmapFileChecksum>x</BmapFileChecksum>',
  '<!-- c -->',
  '&amp;',
  '&#0;',
  '&lt;Range&gt;',
];

/**
 * Makes MappedBlocksCount agree with the ranges again, the way fixChecksum does for tar headers:
 * without it almost every range mutation stops at the count check and never reaches the bounds checks.
 */
function fixMappedCount(xml: string): string {
  let mapped = 0;
  for (const match of xml.matchAll(/<Range[^>]*>\s*(\d+)(?:\s*-\s*(\d+))?\s*<\/Range>/g)) {
    const first = Number(match[1]);
    mapped += (match[2] === undefined ? first : Number(match[2])) - first + 1;
  }
  return xml.replace(
    /<MappedBlocksCount>[^<]*<\/MappedBlocksCount>/,
    `<MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
  );
}

function mutateBmap(input: Buffer, random: SeededRandom): Buffer {
  let xml = input.toString('utf8');
  switch (random.below(6)) {
    case 0: {
      // A count, size or range bound replaced: the consistency checks must catch every lie.
      // Whole numbers only, not digit runs inside the hex digests.
      const numbers = [...xml.matchAll(/(?<![0-9a-fA-F])\d+(?![0-9a-fA-F])/g)];
      if (numbers.length === 0) break;
      const target = random.pick(numbers);
      const at = target.index ?? 0;
      xml = `${xml.slice(0, at)}${random.pick(NUMBERS)}${xml.slice(at + (target[0]?.length ?? 0))}`;
      break;
    }
    case 1: {
      const ranges = [...xml.matchAll(/(<Range[^>]*>)([^<]*)(<\/Range>)/g)];
      if (ranges.length === 0) break;
      const target = random.pick(ranges);
      const at = (target.index ?? 0) + (target[1]?.length ?? 0);
      xml = `${xml.slice(0, at)}${random.pick(RANGE_TEXTS)}${xml.slice(at + (target[2]?.length ?? 0))}`;
      break;
    }
    case 2: {
      // Duplicate or drop one line (an element twice is an array to the XML parser).
      const lines = xml.split('\n');
      const at = random.below(lines.length);
      if (random.chance(0.5)) lines.splice(at, 0, lines[at] ?? '');
      else lines.splice(at, 1);
      xml = lines.join('\n');
      break;
    }
    case 3: {
      const lines = xml.split('\n');
      lines.splice(random.below(lines.length + 1), 0, random.pick(INSERTS));
      xml = lines.join('\n');
      break;
    }
    case 4:
      xml = `<?xml version="1.0"?>\n<!DOCTYPE bmap [<!ENTITY n "${random.pick(NUMBERS)}"><!ENTITY x "&n;&n;&n;&n;">]>\n${xml.replace(/^<\?xml[^>]*>\s*/, '').replace(/> \d+ </, '>&n;<')}`;
      break;
    default:
      xml = xml.replace(
        /version="[^"]*"/,
        `version="${random.pick(['1.0', '1.4', '2.0', '3.0', '', '2', '1.', 'x'])}"`,
      );
  }
  if (random.chance(0.5)) xml = fixMappedCount(xml);
  return Buffer.from(random.chance(0.7) ? fixSelfChecksum(xml) : xml, 'utf8');
}

export const blockMapTarget: FuzzTarget = {
  name: 'block-map',
  dictionary: ['<Range>', '</Range>', '<BlockMap>', '</bmap>', '<!DOCTYPE', '&x;', '<![CDATA[', 'chksum="', '-', '"'],
  async seeds() {
    const sha256 = 'a'.repeat(64);
    return [
      bmapXml({
        version: '2.0',
        imageSizeBytes: 10 * 4096 + 100,
        blocksCount: 11,
        mappedBlocksCount: 4,
        checksumType: 'sha256',
        ranges: `        <Range chksum="${sha256}"> 0-2 </Range>\n        <Range chksum="${sha256}"> 10 </Range>`,
      }),
      bmapXml({
        version: '1.3',
        imageSizeBytes: 8 * 4096,
        blocksCount: 8,
        mappedBlocksCount: 3,
        selfField: 'BmapFileSHA1',
        ranges: `        <Range sha1="${'b'.repeat(40)}"> 1-2 </Range>\n        <Range sha1="${'c'.repeat(40)}"> 7 </Range>`,
      }),
      bmapXml({
        version: '1.4',
        imageSizeBytes: 4096 * 1000,
        blocksCount: 1000,
        mappedBlocksCount: 1000,
        checksumType: 'sha1',
        ranges: `        <Range chksum="${'d'.repeat(40)}"> 0-999 </Range>`,
      }),
    ].map((xml) => Buffer.from(xml, 'utf8'));
  },
  mutateStructure: mutateBmap,
  async parse(input) {
    const map = parseBlockMap(input.toString('utf8'), 'fuzz.bmap');
    let next = 0;
    let total = 0;
    for (const range of map.ranges) {
      if (range.offsetBytes < next || range.lengthBytes <= 0)
        return { invalid: `range ${range.firstBlock}-${range.lastBlock} is out of order or empty` };
      if (range.offsetBytes + range.lengthBytes > map.imageSizeBytes)
        return { invalid: `range ${range.firstBlock}-${range.lastBlock} passes the image end` };
      next = range.offsetBytes + range.lengthBytes;
      total += range.lengthBytes;
    }
    if (total !== map.mappedBytes) return { invalid: `mappedBytes ${map.mappedBytes} is not the ranges' sum ${total}` };
    return SOUND;
  },
};
