import { encodePaxRecords } from './pax-records.ts';
import { encodeUstarHeaderInto, fitsOctal, fitsUstarField, paddedSize, TAR_BLOCK_BYTES } from './tar-header.ts';

/** One member as the writer needs it; names are archive names (no leading '/', dirs end in '/'). */
export interface TarMemberSpec {
  readonly name: string;
  readonly typeFlag: '0' | '1' | '2' | '3' | '4' | '5' | '6';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly userName: string;
  readonly groupName: string;
  readonly sizeBytes: number;
  readonly mtimeNs: bigint;
  readonly linkName: string;
  readonly devMajor: number;
  readonly devMinor: number;
  /** Raw values: written as SCHILY.xattr.NAME records, as GNU tar and star do. */
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

const NS_PER_SEC = 1_000_000_000n;

/** pax time: decimal seconds with up to nine fraction digits; negative times keep the sign in front. */
export function formatPaxTime(timeNs: bigint): string {
  const negative = timeNs < 0n;
  const magnitude = negative ? -timeNs : timeNs;
  const seconds = magnitude / NS_PER_SEC;
  const fraction = magnitude % NS_PER_SEC;
  const fractionText = fraction === 0n ? '' : `.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}`;
  return `${negative ? '-' : ''}${seconds}${fractionText}`;
}

export function parsePaxTime(text: string): bigint | undefined {
  const match = /^(-?)([0-9]{1,20})(?:\.([0-9]{1,9})[0-9]*)?$/.exec(text);
  if (match === null) return undefined;
  const magnitude = BigInt(match[2] ?? '0') * NS_PER_SEC + BigInt((match[3] ?? '').padEnd(9, '0'));
  return match[1] === '-' ? -magnitude : magnitude;
}

function floorSeconds(timeNs: bigint): number {
  const seconds = timeNs / NS_PER_SEC;
  return Number(timeNs < 0n && timeNs % NS_PER_SEC !== 0n ? seconds - 1n : seconds);
}

/** A member's header blocks, sized before they are written, so the writer can place them in its batch. */
export interface MemberHeader {
  readonly sizeBytes: number;
  /** Writes the blocks at `offset` of a range that is all zeros (as Buffer.alloc gives it). */
  writeTo(target: Buffer, offset: number): void;
}

/**
 * The header blocks of one member: a pax 'x' member carrying exact values (full path, link
 * target, nanosecond mtime, large ids, names, xattrs) followed by the ustar header. Readers
 * without pax support still see a sensible, truncated ustar view.
 */
export function prepareMemberHeader(spec: TarMemberSpec): MemberHeader {
  const records: Array<[string, Buffer | string]> = [];
  if (!fitsUstarField(spec.name, 100)) records.push(['path', spec.name]);
  if (!fitsUstarField(spec.linkName, 100)) records.push(['linkpath', spec.linkName]);
  records.push(['mtime', formatPaxTime(spec.mtimeNs)]);
  if (!fitsOctal(spec.uid, 8)) records.push(['uid', String(spec.uid)]);
  if (!fitsOctal(spec.gid, 8)) records.push(['gid', String(spec.gid)]);
  if (!fitsOctal(spec.sizeBytes, 12)) records.push(['size', String(spec.sizeBytes)]);
  if (!fitsUstarField(spec.userName, 32)) records.push(['uname', spec.userName]);
  if (!fitsUstarField(spec.groupName, 32)) records.push(['gname', spec.groupName]);
  for (const [name, value] of spec.xattrs) records.push([`SCHILY.xattr.${name}`, value]);
  const pax = encodePaxRecords(records);
  const mtimeSec = Math.max(0, floorSeconds(spec.mtimeNs));
  const paxBlocksBytes = paddedSize(pax.length);
  return {
    // The pax header block, the pax records (padded to a block), the ustar header block.
    sizeBytes: TAR_BLOCK_BYTES + paxBlocksBytes + TAR_BLOCK_BYTES,
    writeTo(target, offset) {
      encodeUstarHeaderInto(target, offset, {
        name: `PaxHeaders/${paxBaseName(spec.name)}`.slice(0, 99),
        mode: 0o644,
        uid: 0,
        gid: 0,
        sizeBytes: pax.length,
        mtimeSec,
        typeFlag: 'x',
        linkName: '',
        userName: '',
        groupName: '',
        devMajor: 0,
        devMinor: 0,
      });
      pax.copy(target, offset + TAR_BLOCK_BYTES);
      encodeUstarHeaderInto(target, offset + TAR_BLOCK_BYTES + paxBlocksBytes, {
        name: spec.name,
        mode: spec.mode,
        uid: spec.uid,
        gid: spec.gid,
        sizeBytes: spec.sizeBytes,
        mtimeSec,
        typeFlag: spec.typeFlag,
        linkName: spec.linkName,
        userName: spec.userName,
        groupName: spec.groupName,
        devMajor: spec.devMajor,
        devMinor: spec.devMinor,
      });
    },
  };
}

/** The last component of a member name (GNU tar names its pax headers after it). */
function paxBaseName(name: string): string {
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

export function encodeMemberHeader(spec: TarMemberSpec): Buffer {
  const header = prepareMemberHeader(spec);
  const out = Buffer.alloc(header.sizeBytes);
  header.writeTo(out, 0);
  return out;
}

/** Zeros to share: padding is at most one block less a byte, and the end marker two blocks. */
const ZEROS = Buffer.alloc(2 * TAR_BLOCK_BYTES);

/** A view of shared zeros: the caller must not write into it. */
export function memberPadding(sizeBytes: number): Buffer {
  return ZEROS.subarray(0, paddedSize(sizeBytes) - sizeBytes);
}

/** Two zero blocks end a tar archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * TAR_BLOCK_BYTES);
}
