import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import {
  buildRecoveryCore,
  coreWithLocator,
  createJournal,
  decodeRefugeHeader,
  encodeLocator,
  encodeRefugeHeader,
  initialJournalState,
  JOURNAL_SIZE_BYTES,
  LOCATOR_BYTES,
  maxProtectedBytes,
  type PlacedItem,
  patchCoreBlocklist,
  placeRefuge,
  punchRefugeFile,
  REFUGE_FILE_NAME,
  REFUGE_HEADER_BYTES,
  type RefugeExtent,
  type RefugeHeader,
  type RefugeItemName,
  type RefugeItemRequest,
  type RefugeLayout,
  readJournal,
  readRefugeExtents,
  recoveryGrubConfig,
  releaseRefugeFile,
  reserveRefugeFile,
  setRefugeImmutable,
  sha256ItemRaw,
  usableExtents,
  writeItemThroughFile,
} from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { type ByteRange, readAt } from '../disk/index.ts';
import type { NewImageFacts } from './new-image-facts.ts';
import type { OldDisk, OldPartition } from './old-disk.ts';

const SECTOR_BYTES = 512;
const ALIGN_BYTES = 4096;

/** What goes into the refuge, by name: its bytes (all but the bundle, which is room only). */
export interface RefugeContents {
  readonly kernel: Buffer;
  readonly initramfs: Buffer;
  /** The image as given, streamed from its file (it may be larger than a Buffer can hold). */
  readonly image: { readonly path: string; readonly sizeBytes: number; readonly sha256: string };
  readonly plan: Buffer;
  readonly map: Buffer;
  readonly oldLba0: Buffer;
  readonly bundleRoomBytes: number;
  /** Room for core.img, which is built only once the layout is known (it names the ranges). */
  readonly coreRoomBytes: number;
}

export interface FilledRefuge {
  readonly partition: OldPartition;
  readonly path: string;
  readonly layout: RefugeLayout;
  readonly header: RefugeHeader;
  readonly journalId: string;
  /** core.img's first sector: what LBA 0's boot code must point at. */
  readonly coreLba: number;
  readonly reservedBytes: number;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function roundUp(bytes: number): number {
  return Math.ceil(bytes / ALIGN_BYTES) * ALIGN_BYTES;
}

/** The items to place, with their sizes; core and kernel must be contiguous (GRUB). */
export function refugeItemRequests(contents: RefugeContents): RefugeItemRequest[] {
  return [
    { name: 'core', sizeBytes: contents.coreRoomBytes, contiguous: true },
    { name: 'kernel', sizeBytes: contents.kernel.length, contiguous: true },
    { name: 'initramfs', sizeBytes: contents.initramfs.length, contiguous: false },
    { name: 'image', sizeBytes: contents.image.sizeBytes, contiguous: false },
    { name: 'plan', sizeBytes: contents.plan.length, contiguous: false },
    { name: 'map', sizeBytes: contents.map.length, contiguous: false },
    { name: 'old-lba0', sizeBytes: contents.oldLba0.length, contiguous: false },
    { name: 'bundle', sizeBytes: contents.bundleRoomBytes, contiguous: false },
  ];
}

/** The bytes the refuge needs in all: journal, header and every item, each rounded to 4096. */
export function refugeNeedBytes(requests: readonly RefugeItemRequest[]): number {
  return JOURNAL_SIZE_BYTES + REFUGE_HEADER_BYTES + requests.reduce((sum, r) => sum + roundUp(r.sizeBytes), 0);
}

function item(layout: RefugeLayout, name: RefugeItemName): PlacedItem {
  const found = layout.items.find((candidate) => candidate.name === name);
  if (found === undefined) throw new Error(`fill-refuge: the layout has no ${name}`);
  return found;
}

function sectorRanges(extents: readonly RefugeExtent[]): { startLba: number; sectorCount: number }[] {
  return extents.map((extent) => ({
    startLba: extent.diskOffsetBytes / SECTOR_BYTES,
    sectorCount: extent.lengthBytes / SECTOR_BYTES,
  }));
}

/** The first `bytes` of an item's extents (an item's extents cover its size rounded up to 4096). */
function leading(extents: readonly RefugeExtent[], bytes: number): RefugeExtent[] {
  const out: RefugeExtent[] = [];
  let left = roundUp(bytes);
  for (const extent of extents) {
    if (left <= 0) break;
    const lengthBytes = Math.min(extent.lengthBytes, left);
    out.push({ ...extent, lengthBytes });
    left -= lengthBytes;
  }
  return out;
}

/** File ranges the layout uses: every other byte of the reserved file is given back. */
function usedFileRanges(layout: RefugeLayout): ByteRange[] {
  const extents = [layout.journal, layout.header, ...layout.items.flatMap((placed) => placed.extents)];
  return [
    // The file's first block holds a copy of the locator, read through the old filesystem.
    { offsetBytes: 0, lengthBytes: LOCATOR_BYTES },
    ...extents.map((extent) => ({ offsetBytes: extent.fileOffsetBytes, lengthBytes: extent.lengthBytes })),
  ];
}

/**
 * The extents from file offset `fromBytes` on: the refuge file's first block is kept for the
 * locator's copy, which `status` and `disarm` read through the old filesystem when LBA 0 no
 * longer leads to the refuge (a refusal gave the old LBA 0 back, a boot loader was installed).
 * Where that block lies on the disk does not matter: it is read only while the disk is untouched.
 */
export function extentsFrom(extents: readonly RefugeExtent[], fromBytes: number): RefugeExtent[] {
  return extents.flatMap((extent) => {
    const cut = Math.max(0, fromBytes - extent.fileOffsetBytes);
    if (cut >= extent.lengthBytes) return [];
    return [
      {
        fileOffsetBytes: extent.fileOffsetBytes + cut,
        diskOffsetBytes: extent.diskOffsetBytes + cut,
        lengthBytes: extent.lengthBytes - cut,
      },
    ];
  });
}

/** Whether every placed extent still maps the same file bytes to the same disk bytes. */
function sameMapping(placed: readonly RefugeExtent[], now: readonly RefugeExtent[]): boolean {
  return placed.every((want) =>
    now.some(
      (have) =>
        have.fileOffsetBytes <= want.fileOffsetBytes &&
        want.fileOffsetBytes + want.lengthBytes <= have.fileOffsetBytes + have.lengthBytes &&
        have.diskOffsetBytes - have.fileOffsetBytes === want.diskOffsetBytes - want.fileOffsetBytes,
    ),
  );
}

/**
 * The part of the refuge inside one new ext partition mounted before the commit is kept safe
 * through that filesystem's bad-block list, which holds just under 2 GiB (boot/protect-ext-blocks).
 */
function refuseUnprotectable(layout: RefugeLayout, facts: NewImageFacts): void {
  const placed = [layout.journal, layout.header, ...layout.items.flatMap((entry) => entry.extents)];
  for (const writable of facts.writablePartitions) {
    const partition = facts.table.partitions.find((p) => p.number === writable.number);
    if (partition === undefined) continue;
    const insideBytes = placed.reduce((sum, extent) => {
      const from = Math.max(extent.diskOffsetBytes, partition.startBytes);
      const to = Math.min(extent.diskOffsetBytes + extent.lengthBytes, partition.startBytes + partition.sizeBytes);
      return sum + Math.max(0, to - from);
    }, 0);
    if (insideBytes > maxProtectedBytes(4096)) {
      throw new ReimageError(
        'REIMAGE_ARM_NO_REFUGE_ROOM',
        `${insideBytes} bytes of the refuge would lie inside the new partition ${writable.number}, which the restore mounts before the commit; its filesystem can keep at most ${maxProtectedBytes(4096)} bytes safe. Make the image smaller, or name a refuge partition the new layout leaves alone (refuge.partition in the plan).`,
        { evidence: { partition: writable.number, insideBytes } },
      );
    }
  }
}

/** The recovery core.img for a layout: it loads the kernel and initramfs by their sectors. */
export async function buildCoreFor(o: {
  layout: RefugeLayout;
  kernelBytes: number;
  initramfsBytes: number;
  disk: RefugeHeader['disk'];
  workDir: string;
  signal?: AbortSignal;
}): Promise<{ core: Buffer; coreLba: number }> {
  const refuge = {
    startLba: o.layout.journal.diskOffsetBytes / SECTOR_BYTES,
    sectorCount: (JOURNAL_SIZE_BYTES + REFUGE_HEADER_BYTES) / SECTOR_BYTES,
  };
  const config = recoveryGrubConfig({
    kernel: sectorRanges(leading(item(o.layout, 'kernel').extents, o.kernelBytes)),
    initramfs: sectorRanges(leading(item(o.layout, 'initramfs').extents, o.initramfsBytes)),
    refuge: [refuge],
    disk: o.disk,
  });
  const coreItem = item(o.layout, 'core');
  const coreExtent = coreItem.extents[0];
  if (coreExtent === undefined) throw new Error('fill-refuge: core.img has no extent');
  const coreLba = coreExtent.diskOffsetBytes / SECTOR_BYTES;
  const core = patchCoreBlocklist(
    await buildRecoveryCore({ config, workDir: o.workDir, ...(o.signal === undefined ? {} : { signal: o.signal }) }),
    coreLba,
  );
  if (core.length > coreItem.sizeBytes) {
    throw new Error(`fill-refuge: core.img is ${core.length} bytes, its room ${coreItem.sizeBytes}`);
  }
  return { core, coreLba };
}

/**
 * Reserves the refuge in the chosen old filesystem, places everything in the part of it the new
 * image leaves alone, writes it through the filesystem, makes the file immutable, and reads it
 * all back from the raw disk. Any failure removes the file again: the old filesystem is as it was
 * but for its free-space layout.
 */
export async function fillRefuge(o: {
  disk: OldDisk;
  partition: OldPartition;
  mountDir: string;
  reserveBytes: number;
  excluded: readonly ByteRange[];
  contents: RefugeContents;
  facts: NewImageFacts;
  workDir: string;
  log: Logger;
  signal?: AbortSignal;
}): Promise<FilledRefuge> {
  const requests = refugeItemRequests(o.contents);
  const reserved = await reserveRefugeFile({
    mountPoint: o.mountDir,
    partitionStartBytes: o.partition.startBytes,
    sizeBytes: o.reserveBytes,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  try {
    const layout = placeRefuge(usableExtents(extentsFrom(reserved.extents, LOCATOR_BYTES), o.excluded), requests);
    refuseUnprotectable(layout, o.facts);
    // Give back what the layout does not use, so the old OS keeps its free space until the reboot.
    await punchRefugeFile(reserved.path, usedFileRanges(layout), o.reserveBytes);
    const placedExtents = [layout.journal, layout.header, ...layout.items.flatMap((placed) => placed.extents)];
    if (!sameMapping(placedExtents, await readRefugeExtents(reserved.path, o.partition.startBytes, { holes: true }))) {
      throw refugeMoved(reserved.path, 'after giving back the unused part');
    }
    const identity = o.disk.table.identity;
    const { core, coreLba } = await buildCoreFor({
      layout,
      kernelBytes: o.contents.kernel.length,
      initramfsBytes: o.contents.initramfs.length,
      disk: identity,
      workDir: o.workDir,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    const journalId = randomBytes(16);
    const locator = {
      journalOffsetBytes: layout.journal.diskOffsetBytes,
      headerOffsetBytes: layout.header.diskOffsetBytes,
      journalId: journalId.toString('hex'),
    };
    const coreItem = coreWithLocator(core, locator);
    const bytesOf: Record<Exclude<RefugeItemName, 'bundle' | 'image'>, Buffer> = {
      core: coreItem,
      kernel: o.contents.kernel,
      initramfs: o.contents.initramfs,
      plan: o.contents.plan,
      map: o.contents.map,
      'old-lba0': o.contents.oldLba0,
    };
    const digestOf = (name: Exclude<RefugeItemName, 'bundle'>): { sizeBytes: number; sha256: string } =>
      name === 'image'
        ? { sizeBytes: o.contents.image.sizeBytes, sha256: o.contents.image.sha256 }
        : { sizeBytes: bytesOf[name].length, sha256: sha256(bytesOf[name]) };
    const header: RefugeHeader = {
      format: 1,
      journalId: journalId.toString('hex'),
      disk: identity,
      diskSizeBytes: o.disk.target.sizeBytes,
      refugeFile: { partitionNumber: o.partition.number, name: REFUGE_FILE_NAME },
      items: layout.items.map((placed) => {
        const known = placed.name === 'bundle' ? undefined : digestOf(placed.name);
        return {
          name: placed.name,
          sizeBytes: known === undefined ? placed.sizeBytes : known.sizeBytes,
          ...(known === undefined ? {} : { sha256: known.sha256 }),
          ranges: placed.extents.map((extent) => ({
            offsetBytes: extent.diskOffsetBytes,
            lengthBytes: extent.lengthBytes,
          })),
        };
      }),
      image: { format: o.facts.format, sha256: o.facts.sha256, sizeBytes: o.facts.sizeBytes },
      createdAt: new Date().toISOString(),
    };
    const headerBytes = encodeRefugeHeader(header);
    const digests: Record<string, string> = { header: sha256(headerBytes) };
    for (const entry of header.items) if (entry.sha256 !== undefined) digests[entry.name] = entry.sha256;

    const file = await open(reserved.path, 'r+');
    try {
      for (const placed of layout.items) {
        if (placed.name === 'bundle') continue;
        o.signal?.throwIfAborted();
        // The image streams from its file; the raw read-back below checks it against the plan's digest.
        await writeItemThroughFile(
          file,
          placed,
          placed.name === 'image' ? createReadStream(o.contents.image.path) : bytesOf[placed.name],
        );
      }
      await writeAtFile(file, headerBytes, layout.header.fileOffsetBytes);
      await writeAtFile(file, encodeLocator(locator), 0);
      await createJournal(
        file,
        { offsetBytes: layout.journal.fileOffsetBytes, journalId },
        initialJournalState(header.createdAt, digests),
      );
      await file.sync();
    } finally {
      await file.close();
    }
    if (!sameMapping(placedExtents, await readRefugeExtents(reserved.path, o.partition.startBytes, { holes: true }))) {
      throw refugeMoved(reserved.path, 'after writing it');
    }
    await setRefugeImmutable(reserved.path, true);
    await checkRefugeRaw(o.disk, layout, header, headerBytes, journalId);
    return {
      partition: o.partition,
      path: reserved.path,
      layout,
      header,
      journalId: header.journalId,
      coreLba,
      reservedBytes: o.reserveBytes,
    };
  } catch (error) {
    await releaseRefugeFile(reserved.path).catch((releaseError: unknown) =>
      o.log.warn(
        `could not remove the refuge ${reserved.path}: ${String(releaseError)}; remove it with chattr -i and rm`,
      ),
    );
    throw error;
  }
}

async function writeAtFile(file: FileHandle, data: Buffer, offsetBytes: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, offsetBytes + done);
    done += bytesWritten;
  }
}

function refugeMoved(path: string, when: string): ReimageError {
  return new ReimageError(
    'REIMAGE_ARM_REFUGE_MOVED',
    `The refuge ${path} moved on the disk ${when} (its extents changed); the recovery boot could not find it. It was removed; run arm again, and stop any defragmenter first.`,
    { evidence: { path } },
  );
}

/**
 * Reads the refuge back from the raw disk, as the recovery boot will: the header and journal at
 * their sectors, every item's digest. The whole disk's buffer cache is dropped first: it is not
 * the filesystem's, and may still hold what these sectors held before the write.
 */
async function checkRefugeRaw(
  disk: OldDisk,
  layout: RefugeLayout,
  header: RefugeHeader,
  headerBytes: Buffer,
  journalId: Buffer,
): Promise<void> {
  await runCommand('blockdev', ['--flushbufs', disk.device]);
  const raw = await open(disk.device, 'r');
  try {
    const headerRaw = Buffer.alloc(REFUGE_HEADER_BYTES);
    await readAt(raw, headerRaw, layout.header.diskOffsetBytes);
    const problems: string[] = [];
    if (!headerRaw.equals(headerBytes)) problems.push('header');
    else decodeRefugeHeader(headerRaw);
    const journal = await readJournal(raw, { offsetBytes: layout.journal.diskOffsetBytes, journalId });
    if (!journal.trusted || journal.state.stage !== 'armed') problems.push('journal');
    for (const entry of header.items) {
      if (entry.sha256 === undefined) continue;
      if ((await sha256ItemRaw(raw, entry)) !== entry.sha256) problems.push(entry.name);
    }
    if (problems.length > 0) {
      throw new ReimageError(
        'REIMAGE_ARM_READBACK_MISMATCH',
        `Read back from the raw disk, the refuge's ${problems.join(', ')} differ from what was written through the filesystem. The refuge was removed and LBA 0 not changed. Check the disk (SMART, dmesg) before arming again.`,
        { evidence: { device: disk.device, items: problems } },
      );
    }
  } finally {
    await raw.close();
  }
}
