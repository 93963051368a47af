import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { XMLParser } from 'fast-xml-parser';
import { quoteInput } from '../core/quote-input.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

export type BmapChecksumType = 'sha256' | 'sha1';

/** One run of mapped blocks, in bytes, clipped to the image's end. */
export interface MappedRange {
  readonly firstBlock: number;
  readonly lastBlock: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** Hex digest of the range's bytes, of `BlockMap.checksumType`; absent in maps made without checksums. */
  readonly checksum?: string;
}

/** bmaptool's block map: which blocks of the image hold data. Unmapped blocks are not written. */
export interface BlockMap {
  readonly version: string;
  readonly imageSizeBytes: number;
  readonly blockSizeBytes: number;
  readonly blocksCount: number;
  readonly mappedBlocksCount: number;
  readonly checksumType: BmapChecksumType | undefined;
  readonly ranges: readonly MappedRange[];
  /** Sum of the ranges' lengths. */
  readonly mappedBytes: number;
}

function invalid(path: string, what: string, evidence: Record<string, string | number> = {}): ReimageError {
  return new ReimageError(
    'REIMAGE_BMAP_INVALID',
    `The block map ${path} is not usable: ${what}. Recreate it with "bmaptool create".`,
    {
      evidence: { path, ...evidence },
    },
  );
}

function integerField(path: string, root: Record<string, unknown>, field: string): number {
  const raw = root[field];
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  if (!/^\d+$/.test(text)) throw invalid(path, `field ${field} is missing or not a whole number`, { field });
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw invalid(path, `field ${field} is too large`, { field });
  return value;
}

/**
 * Parses bmaptool's XML (format 1.x: per-range `sha1` attributes or, from 1.4, `chksum` with a
 * ChecksumType; format 2.x: `chksum` with ChecksumType) and checks it is self-consistent: ranges
 * ordered, not overlapping, inside the image. Pure: `path` only names the file in errors.
 */
export function parseBlockMap(xml: string, path = 'block map'): BlockMap {
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    isArray: (tagName) => tagName === 'Range',
  });
  let document: Record<string, unknown>;
  try {
    document = parser.parse(xml) as Record<string, unknown>;
  } catch (e) {
    throw invalid(path, `it is not well-formed XML (${quoteInput(e instanceof Error ? e.message : String(e))})`);
  }
  const root = document.bmap;
  if (typeof root !== 'object' || root === null) throw invalid(path, 'there is no <bmap> element');
  const bmap = root as Record<string, unknown>;
  const version = typeof bmap['@_version'] === 'string' ? bmap['@_version'] : '';
  const major = Number(version.split('.')[0]);
  if (major !== 1 && major !== 2) {
    throw invalid(path, `format version ${quoteInput(version)} is not 1.x or 2.x`, {
      field: 'version',
      actual: version,
    });
  }
  const imageSizeBytes = integerField(path, bmap, 'ImageSize');
  const blockSizeBytes = integerField(path, bmap, 'BlockSize');
  const blocksCount = integerField(path, bmap, 'BlocksCount');
  const mappedBlocksCount = integerField(path, bmap, 'MappedBlocksCount');
  if (blockSizeBytes === 0 || blockSizeBytes % 512 !== 0) {
    throw invalid(path, `BlockSize ${blockSizeBytes} is not a multiple of 512`, { field: 'BlockSize' });
  }
  if (blocksCount !== Math.ceil(imageSizeBytes / blockSizeBytes)) {
    throw invalid(path, 'BlocksCount does not match ImageSize / BlockSize', {
      field: 'BlocksCount',
      expected: Math.ceil(imageSizeBytes / blockSizeBytes),
      actual: blocksCount,
    });
  }
  const typeText = typeof bmap.ChecksumType === 'string' ? bmap.ChecksumType.trim().toLowerCase() : undefined;
  let checksumType: BmapChecksumType | undefined;
  if (typeText === 'sha256' || typeText === 'sha1') checksumType = typeText;
  else if (typeText !== undefined) {
    throw invalid(path, `ChecksumType ${quoteInput(typeText)} is not sha256 or sha1`, {
      field: 'ChecksumType',
      actual: typeText,
    });
  }

  const blockMap = bmap.BlockMap;
  const rawRanges =
    typeof blockMap === 'object' && blockMap !== null ? (blockMap as Record<string, unknown>).Range : undefined;
  const rangeList: unknown[] = Array.isArray(rawRanges) ? rawRanges : [];
  const ranges: MappedRange[] = [];
  let mappedBlocks = 0;
  let mappedBytes = 0;
  let nextFreeBlock = 0;
  for (const item of rangeList) {
    const text = typeof item === 'string' ? item : String((item as Record<string, unknown>)['#text'] ?? '');
    const attributes = typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {};
    const match = /^\s*(\d+)(?:\s*-\s*(\d+))?\s*$/.exec(text);
    if (match === null || match[1] === undefined) throw invalid(path, `range ${quoteInput(text)} is not "N" or "N-M"`);
    const firstBlock = Number(match[1]);
    const lastBlock = match[2] === undefined ? firstBlock : Number(match[2]);
    if (lastBlock < firstBlock || firstBlock < nextFreeBlock || lastBlock >= blocksCount) {
      throw invalid(
        path,
        `range ${quoteInput(text.trim())} is out of order, overlaps another or lies past the image's end`,
        {
          range: text.trim(),
        },
      );
    }
    nextFreeBlock = lastBlock + 1;
    // bmap 1.0-1.3 named the attribute after its only algorithm, sha1.
    const legacySha1 = attributes['@_sha1'];
    const chksum = attributes['@_chksum'];
    let checksum: string | undefined;
    if (typeof chksum === 'string') checksum = chksum.trim().toLowerCase();
    else if (typeof legacySha1 === 'string') {
      checksum = legacySha1.trim().toLowerCase();
      checksumType ??= 'sha1';
    }
    if (checksum !== undefined) {
      const hexLength = checksumType === 'sha1' ? 40 : 64;
      if (checksumType === undefined || !new RegExp(`^[0-9a-f]{${hexLength}}$`).test(checksum)) {
        throw invalid(path, `range ${quoteInput(text.trim())} has a malformed checksum`, { range: text.trim() });
      }
    }
    const offsetBytes = firstBlock * blockSizeBytes;
    const lengthBytes = Math.min((lastBlock + 1) * blockSizeBytes, imageSizeBytes) - offsetBytes;
    ranges.push({ firstBlock, lastBlock, offsetBytes, lengthBytes, ...(checksum === undefined ? {} : { checksum }) });
    mappedBlocks += lastBlock - firstBlock + 1;
    mappedBytes += lengthBytes;
  }
  if (mappedBlocks !== mappedBlocksCount) {
    throw invalid(path, 'MappedBlocksCount does not match the ranges', {
      field: 'MappedBlocksCount',
      expected: mappedBlocks,
      actual: mappedBlocksCount,
    });
  }
  verifyBmapFileChecksum(xml, path, bmap, checksumType);
  return { version, imageSizeBytes, blockSizeBytes, blocksCount, mappedBlocksCount, checksumType, ranges, mappedBytes };
}

/**
 * bmap files carry a digest of themselves, computed with the digest's own text replaced by zeros.
 * Checking it catches a map edited or damaged in transit, which would otherwise skip real data.
 */
function verifyBmapFileChecksum(
  xml: string,
  path: string,
  bmap: Record<string, unknown>,
  checksumType: BmapChecksumType | undefined,
): void {
  const field = typeof bmap.BmapFileChecksum === 'string' ? 'BmapFileChecksum' : 'BmapFileSHA1';
  const stored = bmap[field];
  if (typeof stored !== 'string') return;
  const expected = stored.trim().toLowerCase();
  const algorithm = field === 'BmapFileSHA1' ? 'sha1' : (checksumType ?? 'sha256');
  const zeroed = xml.replace(expected, '0'.repeat(expected.length));
  const actual = createHash(algorithm).update(zeroed).digest('hex');
  if (actual !== expected) {
    throw new ReimageError(
      'REIMAGE_BMAP_INVALID',
      `The block map ${path} does not match its own ${field}: it was changed or damaged. Fetch it again or recreate it with "bmaptool create".`,
      { evidence: { path, field, expected, actual } },
    );
  }
}

/** Reads and parses a block map file. */
export async function loadBlockMap(path: string): Promise<BlockMap> {
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (e) {
    const reason = isSystemError(e) ? e.code : String(e);
    throw new ReimageError('REIMAGE_BMAP_UNREADABLE', `Cannot read the block map ${path} (${reason}).`, {
      evidence: { path, reason },
      cause: e,
    });
  }
  return parseBlockMap(xml, path);
}
