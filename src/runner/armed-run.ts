import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  decodeMapItem,
  EXT_FILESYSTEMS,
  FINAL_STAGES,
  type JournalStage,
  type MapItem,
  mountNewPartitionReadWrite,
  protectExtBlocks,
  type RefugeHeader,
  type RefugeHeaderItem,
  readBundleRaw,
  readItemChunksRaw,
  readItemRaw,
  readJournal,
  releaseExtBlocks,
  sha256ItemRaw,
  wipeItemRaw,
  writeBundleRaw,
} from '../boot/index.ts';
import { wipeStaleGptHeaders } from '../boot/stale-gpt.ts';
import { isAbortError } from '../core/exit-codes.ts';
import { ignoreProgress, type OnProgress } from '../core/progress.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import {
  attachLoopAt,
  type ByteRange,
  inspectTarget,
  type LoopDevice,
  type Mounted,
  mountReadOnly,
  probeFilesystem,
  replaceSector,
  resolvePartition,
} from '../disk/index.ts';
import { commitFirstSector, writeMappedRanges } from '../image/index.ts';
import { type Plan, parsePlan } from '../plan/index.ts';
import { captureBundle, requestsFromPlanPaths } from '../retain/index.ts';
import { type ArmedDisk, findArmedDisk } from './armed-disk.ts';
import { ArmedJournal } from './armed-journal.ts';
import { ARMED_REPORT_PATH, partitionTableSha256 } from './armed-report-path.ts';
import { restoreStage, runAfterHooks } from './restore-stage.ts';
import type { RunLog } from './run-log.ts';
import { unmountAll } from './unmount-all.ts';
import { markTouched, withRetries } from './with-retries.ts';

const SECTOR_BYTES = 512;
/** Attempts of the steps after the capture within one boot, before /init's slower retries take over. */
const IN_RUN_ATTEMPTS = 3;
/** 5 s, then 10 s: enough for a path or a controller to come back, short next to /init's minutes. */
function inRunRetryDelayMs(failedAttempt: number): number {
  return 5000 * failedAttempt;
}
/** Stages before the first destructive write: a refusal there disarms and boots the old OS. */
const UNTOUCHED: readonly JournalStage[] = ['armed', 'capturing', 'bundle-persisted'];

export interface ArmedRunOptions {
  /** The kernel command line (/proc/cmdline): reimage.refuge= and reimage.disk= say where to look. */
  readonly cmdline: string;
  /** The plan's disk baked into /init: tried first, checked like any other. */
  readonly diskHint?: string;
  /** RAM (the initramfs's tmpfs): the image, the bundle, the log. */
  readonly workDir: string;
  readonly log: RunLog;
  readonly onProgress?: OnProgress;
  readonly signal?: AbortSignal;
  readonly extraLogFiles?: readonly string[];
  /** The wait before an in-run retry (default 5 s, then 10 s). */
  readonly retryDelayMs?: (failedAttempt: number) => number;
}

/** What an armed run reports, into report.json of the new root like a plain run's. */
export interface ArmedRunReport {
  readonly result: 'ok';
  readonly mode: 'armed';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly host: string;
  readonly disk: string;
  readonly attempt: number;
  /** The stage this boot started from (armed on the first, later after a power cut). */
  readonly resumedFrom: JournalStage;
  readonly image: RefugeHeader['image'];
  readonly mappedBytes: number;
  readonly bytesWritten: number;
  readonly entriesRestored: number;
  readonly entriesVerified: number;
  readonly finish: Plan['finish'];
  /**
   * SHA-256 of bytes 440–511 of the LBA 0 the commit writes: `status` on the new OS reports
   * `done` from this report only while LBA 0 holds that table (src/arm/armed-report.ts).
   */
  readonly partitionTableSha256: string;
  /**
   * `ran`: the after-hooks ran to their end in this run (after a failure of theirs in an earlier
   * attempt, again). `interrupted`: the power was cut while an earlier boot ran them; a hook may
   * have half-run, so they are not run twice — the earlier boot's log says how far they got.
   */
  readonly afterHooks: 'ran' | 'interrupted';
}

function item(header: RefugeHeader, name: RefugeHeaderItem['name']): RefugeHeaderItem {
  const found = header.items.find((candidate) => candidate.name === name);
  if (found === undefined) {
    throw new ReimageError(
      'REIMAGE_REFUGE_DAMAGED',
      `The refuge header lists no ${name}; arm writes one. Disarm and arm again.`,
      {
        evidence: { item: name },
      },
    );
  }
  return found;
}

/** Ranges intersected with [start, start+size), made relative to start. Pure. */
export function rangesWithin(ranges: readonly ByteRange[], startBytes: number, sizeBytes: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const range of ranges) {
    const from = Math.max(range.offsetBytes, startBytes);
    const to = Math.min(range.offsetBytes + range.lengthBytes, startBytes + sizeBytes);
    if (to > from) out.push({ offsetBytes: from - startBytes, lengthBytes: to - from });
  }
  return out;
}

/**
 * The armed run, from the recovery initramfs: finds the disk and refuge from the command line,
 * trusts nothing whose digest does not match the journal, and goes on from the journal's stage —
 * capture and persist the bundle, write the mapped ranges with durable progress, restore through
 * the new partitions at their offsets, wipe the bundle, release the refuge's blocks, commit LBA 0. Every step is
 * recorded before it is acted on and is idempotent, so a power cut anywhere resumes here on the
 * next boot and ends as an uncut run would. A refusal before the first destructive write
 * disarms (the old LBA 0 back) and the old OS boots.
 */
export async function runArmed(o: ArmedRunOptions): Promise<ArmedRunReport> {
  const { log } = o;
  const onProgress = o.onProgress ?? ignoreProgress;
  const startedAt = new Date();
  await mkdir(o.workDir, { recursive: true, mode: 0o700 });
  const found = await findArmedDisk({ cmdline: o.cmdline, hint: o.diskHint, log });
  const disk = await open(found.device, 'r+');
  try {
    const journal = await openJournal(disk, found);
    const resumedFrom = journal.state.stage;
    log.info(`journal: stage ${resumedFrom}, attempt ${journal.state.attempt}`);
    if (resumedFrom === 'refused') {
      // A refusal cut short (or whose disarm failed) is finished now: a refusal must end in the
      // old OS, never in another recovery boot.
      await disarmAfterRefusal(disk, found, journal, log);
      throw refusedError(journal.state.reason?.message ?? 'an earlier boot refused');
    }
    if (resumedFrom === 'done' || resumedFrom === 'released') {
      throw new ReimageError(
        'REIMAGE_ARMED_RUN_CANNOT_START',
        `The armed run on ${found.device} is over (stage ${resumedFrom}), yet this boot came through the recovery path: LBA 0 is not the new image's. Nothing was changed; the machine stays here for a look (reimage status from a rescue system).`,
        { evidence: { stage: resumedFrom }, targetState: 'unknown' },
      );
    }
    // A failure recorded while the after-hooks ran means they ended (failed), unlike a power cut
    // in them, which leaves `hooks-started` with no failure: the retry runs them again rather than
    // committing a new OS whose set-up failed with nobody watching (/init retries, visibly).
    const rerunFailedHooks =
      resumedFrom === 'failed' &&
      journal.state.failedAt === 'hooks-started' &&
      journal.state.reason?.code === 'REIMAGE_RUN_AFTER_HOOK_FAILED';
    try {
      await checkRefugeDigests(disk, found.header, found.headerBytes, journal, log);
      await journal.record({ type: 'begin-attempt' });
      const plan = await readPlanItem(disk, found.header);
      const map = decodeMapItem(await readItemRaw(disk, item(found.header, 'map')));
      const context: RunContext = { o, found, disk, journal, plan, map, onProgress };
      const bundlePath = await ensureBundlePersisted(context);
      let bytesWritten = 0;
      // Every step from here on goes on from the journal's stage, so a failed attempt is simply
      // run again: a transient fault (an I/O error that passes) costs seconds, not a reboot.
      // What still fails goes to /init, which retries after a growing delay (docs/arm.md).
      const { value: restored } = await withRetries({
        stage: 'armed run',
        maxAttempts: IN_RUN_ATTEMPTS,
        log,
        signal: o.signal,
        failureCode: 'REIMAGE_ARMED_RUN_FAILED',
        failureWhat: 'The armed run failed',
        retryDelayMs: o.retryDelayMs ?? inRunRetryDelayMs,
        attempt: async (attempt) => {
          if (attempt > 1)
            log.info(
              `armed run: going on from stage ${journal.state.stage} (attempt ${attempt} of ${IN_RUN_ATTEMPTS} in this boot)`,
            );
          bytesWritten += await ensureWritten(context);
          const report = await ensureRestored(context, bundlePath, {
            startedAt,
            resumedFrom,
            bytesWritten,
            rerunFailedHooks,
          });
          await ensureBundleWiped(context);
          // The release comes before the commit (docs/adr/0608-release-before-commit.md): the
          // commit is the run's last disk step, so no cut can leave the refuge's blocks listed as bad.
          await ensureReleased(context);
          await ensureCommitted(context);
          return report;
        },
      });
      log.info(
        `reimage complete (armed run) in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s; finish: ${plan.finish}`,
      );
      return restored;
    } catch (error) {
      await recordEnd(disk, found, journal, error, log);
      if (journal.state.stage === 'refused') {
        // Disarmed (recordEnd threw otherwise): the old OS boots next (exit 3 makes /init reboot).
        throw refusedError(error instanceof Error ? error.message : String(error), error);
      }
      throw markTouched(error, 'REIMAGE_ARMED_RUN_FAILED', 'The armed run failed after the disk was touched');
    }
  } finally {
    await disk.close();
    await rm(join(o.workDir, 'retain.tar'), { force: true });
    await rm(join(o.workDir, 'image'), { force: true });
  }
}

function refusedError(why: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_ARMED_RUN_REFUSED',
    `The armed run refused before the disk was touched: ${why} The old boot code is back; the old OS boots next.`,
    {
      evidence: { code: isReimageError(cause) ? cause.code : 'internal' },
      ...(cause === undefined ? {} : { cause }),
      targetState: 'untouched',
    },
  );
}

interface RunContext {
  readonly o: ArmedRunOptions;
  readonly found: ArmedDisk;
  readonly disk: FileHandle;
  readonly journal: ArmedJournal;
  readonly plan: Plan;
  readonly map: MapItem;
  readonly onProgress: OnProgress;
}

async function openJournal(disk: FileHandle, found: ArmedDisk): Promise<ArmedJournal> {
  const location = { offsetBytes: found.journalOffsetBytes, journalId: Buffer.from(found.header.journalId, 'hex') };
  const read = await readJournal(disk, location);
  if (!read.trusted) {
    throw new ReimageError(
      'REIMAGE_ARMED_RUN_CANNOT_START',
      `No journal slot on ${found.device} can be trusted (slot 0: ${read.slots[0].rejection}, slot 1: ${read.slots[1].rejection}): where the run is cannot be known, so nothing is done.`,
      { evidence: { device: found.device }, targetState: 'unknown' },
    );
  }
  return new ArmedJournal(disk, location, read.state);
}

/** Every refuge item (and the header) must match the digests the journal holds, before anything is used. */
async function checkRefugeDigests(
  disk: FileHandle,
  header: RefugeHeader,
  headerBytes: Buffer,
  journal: ArmedJournal,
  log: RunLog,
): Promise<void> {
  const { refugeSha256 } = journal.state;
  const damaged: string[] = [];
  if (createHash('sha256').update(headerBytes).digest('hex') !== refugeSha256.header) damaged.push('header');
  for (const entry of header.items) {
    const expected = refugeSha256[entry.name];
    if (entry.name === 'bundle' || expected === undefined) continue;
    if ((await sha256ItemRaw(disk, entry)) !== expected) damaged.push(entry.name);
  }
  if (damaged.length > 0) {
    throw new ReimageError(
      'REIMAGE_REFUGE_DAMAGED',
      `The refuge's ${damaged.join(', ')} no longer match their digests in the journal: something wrote into the refuge.`,
      { evidence: { items: damaged } },
    );
  }
  log.info(`refuge intact: ${header.items.length - 1} items match their digests`);
}

async function readPlanItem(disk: FileHandle, header: RefugeHeader): Promise<Plan> {
  const text = (await readItemRaw(disk, item(header, 'plan'))).toString('utf8');
  const parsed = parsePlan(text);
  if (parsed.plan === undefined) {
    throw new ReimageError(
      'REIMAGE_REFUGE_DAMAGED',
      "The refuge's plan is not a valid plan; arm wrote one. Disarm and arm again.",
      {
        evidence: { item: 'plan' },
      },
    );
  }
  return parsed.plan;
}

/**
 * Step 1: capture from the untouched old disk into the refuge; on a later boot, read it back —
 * but only while the restore still needs it (up to `written`): from `hooks-done` on it is being
 * or has been wiped, and a cut in the wipe must not stop the run.
 */
async function ensureBundlePersisted(c: RunContext): Promise<string | undefined> {
  const { journal, disk, found, o } = c;
  const bundleItem = item(found.header, 'bundle');
  const bundlePath = join(o.workDir, 'retain.tar');
  if (journal.state.stage === 'armed' || journal.state.stage === 'capturing') {
    await journal.record({ type: 'capture-started' });
    o.log.info('step 1/6 capture: the old system, read-only, into the refuge');
    const mounts: Mounted[] = [];
    try {
      const device = await resolvePartition(found.device, c.plan.retain.partition, { field: 'retain.partition' });
      const root = await mountReadOnly(device, join(o.workDir, 'old-root'), o.log);
      mounts.push(root);
      await captureBundle({
        root: root.dir,
        requests: requestsFromPlanPaths(c.plan.retain.paths),
        bundlePath,
        log: o.log,
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        onProgress: c.onProgress,
      });
    } finally {
      await unmountAll(mounts);
    }
    const bundleSha256 = await writeBundleRaw(disk, bundleItem, await readFile(bundlePath));
    await journal.record({ type: 'bundle-persisted', bundleSha256 });
    o.log.info('retention bundle persisted in the refuge and flushed');
    return bundlePath;
  }
  if (!['bundle-persisted', 'writing', 'written'].includes(journal.state.stage)) return undefined;
  const bundle = await readBundleRaw(disk, bundleItem);
  const sha256 = bundle === undefined ? undefined : createHash('sha256').update(bundle).digest('hex');
  if (bundle === undefined || sha256 !== journal.state.bundleSha256) {
    throw new ReimageError(
      'REIMAGE_REFUGE_DAMAGED',
      "The retention bundle in the refuge does not match the journal's digest; the machine's state cannot be restored from it.",
      { evidence: { item: 'bundle' }, targetState: UNTOUCHED.includes(journal.state.stage) ? 'untouched' : 'changed' },
    );
  }
  await writeFile(bundlePath, bundle, { mode: 0o600 });
  o.log.info('retention bundle read back from the refuge (persisted by an earlier boot)');
  return bundlePath;
}

/** Step 2: the mapped ranges of the new image, all but LBA 0, progress durable in the journal. */
async function ensureWritten(c: RunContext): Promise<number> {
  const { journal, disk, found, o, map } = c;
  if (journal.state.stage !== 'bundle-persisted' && journal.state.stage !== 'writing') return 0;
  // The image goes into RAM before the write is recorded as started: running out of RAM here
  // is still a refusal, with nothing written.
  const imagePath = join(o.workDir, 'image');
  await pipeline(
    Readable.from(readItemChunksRaw(disk, item(found.header, 'image'))),
    createWriteStream(imagePath, { mode: 0o600 }),
  );
  if (journal.state.stage === 'bundle-persisted') {
    const totalBytes = map.ranges.reduce((sum, range) => sum + range.lengthBytes, 0);
    await journal.record({ type: 'write-started', totalBytes });
  }
  const durableBytes = journal.state.write?.durableBytes ?? 0;
  o.log.info(
    `step 2/6 write: ${map.ranges.length} mapped ranges onto ${found.device}, from byte ${durableBytes} of the mapped bytes`,
  );
  const result = await writeMappedRanges({
    imagePath,
    target: found.device,
    ranges: map.ranges,
    durableBytes,
    onDurable: async (bytes) => {
      if (bytes > (journal.state.write?.durableBytes ?? 0))
        await journal.record({ type: 'write-progress', durableBytes: bytes });
    },
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    onProgress: c.onProgress,
  });
  // An old GPT's headers the new image does not write would outlive the commit (boot/stale-gpt.ts).
  const wiped = await wipeStaleGptHeaders(disk, {
    diskSizeBytes: found.header.diskSizeBytes,
    mapped: map.ranges,
    keep: refugeRanges(c),
  });
  if (wiped.length > 0) o.log.info(`wiped the old GPT header the new image leaves behind at byte ${wiped.join(', ')}`);
  await journal.record({ type: 'write-done' });
  o.log.info(`wrote ${result.bytesWritten} bytes of ${result.totalBytes} mapped`);
  return result.bytesWritten;
}

/** Loop devices over the new partitions the restore mounts, at their offsets in the new table. */
async function attachNewPartitions(c: RunContext): Promise<Map<number, LoopDevice>> {
  const loops = new Map<number, LoopDevice>();
  for (const writable of c.map.writablePartitions) {
    const partition = c.map.partitions.find((p) => p.number === writable.number);
    if (partition === undefined) throw new Error(`armed run: the map has no partition ${writable.number}`);
    loops.set(
      writable.number,
      await attachLoopAt(c.found.device, { offsetBytes: partition.startBytes, sizeBytes: partition.sizeBytes }),
    );
  }
  return loops;
}

/** Every byte of the refuge on the disk, journal and header included. */
function refugeRanges(c: RunContext): ByteRange[] {
  return [
    { offsetBytes: c.found.journalOffsetBytes, lengthBytes: c.found.cmdline.refuge.sectorCount * SECTOR_BYTES },
    ...c.found.header.items.flatMap((entry) => entry.ranges),
  ];
}

/** The refuge's bytes inside one new partition (relative to its start), journal and header included. */
function refugeRangesIn(c: RunContext, partitionNumber: number): ByteRange[] {
  const partition = c.map.partitions.find((p) => p.number === partitionNumber);
  if (partition === undefined) return [];
  return rangesWithin(refugeRanges(c), partition.startBytes, partition.sizeBytes);
}

/** Step 3: protect the refuge in writable ext partitions, mount, restore, verify, hooks once, logs. */
async function ensureRestored(
  c: RunContext,
  bundlePath: string | undefined,
  facts: { startedAt: Date; resumedFrom: JournalStage; bytesWritten: number; rerunFailedHooks: boolean },
): Promise<ArmedRunReport> {
  const { journal, o, plan, map } = c;
  let afterHooks: ArmedRunReport['afterHooks'] = 'ran';
  const report = (restored: number, verified: number): ArmedRunReport => ({
    result: 'ok',
    mode: 'armed',
    startedAt: facts.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    host: hostname(),
    disk: c.found.device,
    attempt: journal.state.attempt,
    resumedFrom: facts.resumedFrom,
    image: c.found.header.image,
    mappedBytes: map.ranges.reduce((sum, range) => sum + range.lengthBytes, 0),
    bytesWritten: facts.bytesWritten,
    entriesRestored: restored,
    entriesVerified: verified,
    finish: plan.finish,
    partitionTableSha256: partitionTableSha256(Buffer.from(map.firstSector, 'base64')),
    afterHooks,
  });
  if (!['written', 'restored', 'hooks-started'].includes(journal.state.stage)) return report(0, 0);
  o.log.info('step 3/6 restore: the new partitions at their offsets, the refuge kept safe in them');
  const loops = await attachNewPartitions(c);
  const mounts: Mounted[] = [];
  try {
    for (const [number, loop] of loops) {
      const filesystem = (await probeFilesystem(loop.device)).TYPE;
      const inside = refugeRangesIn(c, number);
      if (inside.length === 0) continue;
      if (filesystem === undefined || !EXT_FILESYSTEMS.has(filesystem)) {
        throw new Error(
          `armed run: the refuge lies inside partition ${number} (${filesystem ?? 'no filesystem'}), which arm excludes`,
        );
      }
      const protectedBlocks = await protectExtBlocks(loop.device, inside);
      o.log.info(`partition ${number}: ${protectedBlocks.blocks} refuge blocks marked in use (bad-block list)`);
    }
    let restored = 0;
    let verified = 0;
    const partitionDevice = async (
      ref: Plan['restore']['mounts'][number]['partition'],
      field: string,
    ): Promise<string> => {
      for (const [number, loop] of loops) {
        if (typeof ref === 'number' ? ref === number : await matchesLabelOrUuid(loop.device, ref)) return loop.device;
      }
      throw new ReimageError('REIMAGE_DISK_PARTITION_NOT_FOUND', `The new image has no partition for ${field}.`, {
        evidence: { field },
        targetTouched: true,
      });
    };
    const newRoot = join(o.workDir, 'new-root');
    if (journal.state.stage === 'written') {
      if (bundlePath === undefined) throw new Error('armed run: no bundle at stage written');
      const result = await restoreStage({
        plan,
        partitionDevice,
        // ext without the lazy inode-table init and discard (boot/mount-new-partition.ts).
        mount: mountNewPartitionReadWrite,
        workDir: o.workDir,
        bundlePath,
        mounts,
        log: o.log,
        onProgress: c.onProgress,
        signal: o.signal,
      });
      restored = result.restore.entriesRestored;
      verified = result.verify.entriesChecked;
      // The restored files sit in the page cache of filesystems on loop devices; the journal's
      // fdatasync does not reach them. Everything durable first, then `restored`.
      await runCommand('sync', []);
      await journal.record({ type: 'restored' });
    } else {
      for (const [index, mount] of plan.restore.mounts.entries()) {
        mounts.push(
          await mountNewPartitionReadWrite(
            await partitionDevice(mount.partition, `restore.mounts[${index}].partition`),
            join(newRoot, mount.at),
          ),
        );
      }
    }
    if (journal.state.stage === 'restored') {
      await journal.record({ type: 'hooks-started' });
      await runAfterHooks({ plan, newRoot, log: o.log, signal: o.signal });
    } else if (facts.rerunFailedHooks) {
      o.log.warn('the after-hooks failed in an earlier attempt: running them again');
      await runAfterHooks({ plan, newRoot, log: o.log, signal: o.signal });
    } else {
      afterHooks = 'interrupted';
      o.log.warn(
        "the power was cut while an earlier boot ran the after-hooks: they are not run twice; the report says 'interrupted' and the earlier boot's log says how far they got",
      );
    }
    const final = report(restored, verified);
    const logsDir = join(newRoot, plan.restore.logs);
    await mkdir(logsDir, { recursive: true });
    await writeFile(join(logsDir, 'report.json'), `${JSON.stringify(final, null, 2)}\n`);
    // A copy where `status` on the new OS finds it without the plan (armed-report-path.ts).
    await mkdir(dirname(join(newRoot, ARMED_REPORT_PATH)), { recursive: true });
    await writeFile(join(newRoot, ARMED_REPORT_PATH), `${JSON.stringify(final, null, 2)}\n`);
    for (const file of [o.log.file, ...(o.extraLogFiles ?? [])]) {
      await writeFile(join(logsDir, file.split('/').at(-1) ?? 'log'), await readFile(file)).catch(() => undefined);
    }
    await unmountAll(mounts);
    await runCommand('sync', []);
    await journal.record({ type: 'hooks-done' });
    return final;
  } finally {
    await unmountAll(mounts).catch(() => undefined);
    for (const loop of loops.values()) await loop.detach();
  }
}

async function matchesLabelOrUuid(device: string, ref: { label: string } | { uuid: string }): Promise<boolean> {
  const fields = await probeFilesystem(device);
  return 'label' in ref ? fields.LABEL === ref.label : fields.UUID?.toLowerCase() === ref.uuid.toLowerCase();
}

/** Step 4: the bundle (private keys) leaves the refuge before the commit; the rest is checked again. */
async function ensureBundleWiped(c: RunContext): Promise<void> {
  if (c.journal.state.stage !== 'hooks-done') return;
  c.o.log.info('step 4/6 wipe: the retention bundle leaves the refuge');
  await wipeItemRaw(c.disk, item(c.found.header, 'bundle'));
  await checkRefugeDigests(c.disk, c.found.header, c.found.headerBytes, c.journal, c.o.log);
  await c.journal.record({ type: 'bundle-wiped' });
}

/**
 * Step 5: the refuge's blocks inside new ext partitions are given back to them (off the bad-block
 * lists). Before the commit: from `hooks-done` on nothing mounts a new partition again, so nothing
 * can allocate those blocks until the new OS runs, and a cut before the commit boots the recovery
 * path from the refuge, still intact, and only commits. `e2fsck -L` with a shorter list writes no
 * block it frees (it reuses the list's old indirect blocks), so the refuge is not written; its
 * digests are checked again all the same. A journal of the previous order at `committed` (commit
 * before release) owes only this step, which then ends the run.
 */
async function ensureReleased(c: RunContext): Promise<void> {
  const { stage } = c.journal.state;
  if (stage !== 'bundle-wiped' && stage !== 'committed') return;
  c.o.log.info(
    stage === 'committed'
      ? "step 5/6 release: the refuge's blocks go back to the new filesystems (owed by a commit of the previous order)"
      : "step 5/6 release: the refuge's blocks go back to the new filesystems",
  );
  const loops = await attachNewPartitions(c);
  try {
    for (const [number, loop] of loops) {
      const inside = refugeRangesIn(c, number);
      if (inside.length === 0) continue;
      if (!EXT_FILESYSTEMS.has((await probeFilesystem(loop.device)).TYPE ?? '')) continue;
      // A release that fails leaves the blocks listed as bad: room lost in the new OS, nothing
      // worse. It must not hold back the commit of a complete new OS for ever.
      try {
        const released = await releaseExtBlocks(loop.device, inside);
        c.o.log.info(`partition ${number}: ${released.blocks} refuge blocks off the bad-block list`);
      } catch (error) {
        if (isAbortError(error) || c.o.signal?.aborted === true) throw error;
        c.o.log.warn(
          `partition ${number}: the refuge's blocks stay on its bad-block list (${error instanceof Error ? error.message : String(error)}); committing all the same`,
        );
      }
    }
  } finally {
    for (const loop of loops.values()) await loop.detach();
  }
  // e2fsck wrote through loop devices: their writes reach the disk before the journal says so.
  await runCommand('sync', []);
  if (stage === 'bundle-wiped') {
    // The refuge must still boot the recovery path until the commit. Were it damaged, stopping
    // here would leave a disk whose next boot loads it: the commit, one sector away, is the
    // lesser harm, so a damage is said, not acted on.
    await checkRefugeDigests(c.disk, c.found.header, c.found.headerBytes, c.journal, c.o.log).catch((error: unknown) =>
      c.o.log.warn(
        `after the release, ${error instanceof Error ? error.message : String(error)} Committing at once: the new OS is complete.`,
      ),
    );
  }
  await c.journal.record({ type: 'blocks-released' });
}

/** Step 6: the commit — the new image's LBA 0, one sector, flushed: the run's last disk step. */
async function ensureCommitted(c: RunContext): Promise<void> {
  if (c.journal.state.stage !== 'blocks-released') return;
  c.o.log.info('step 6/6 commit: the new LBA 0');
  const target = await inspectTarget(c.found.device);
  await commitFirstSector(target, Buffer.from(c.map.firstSector, 'base64'), { log: c.o.log });
  await c.journal.record({ type: 'committed' });
}

/**
 * After a failure: before the first destructive write it is a refusal — the journal says why, then
 * disarmAfterRefusal puts the old LBA 0 back and the old OS boots (exit 3); after it, the journal
 * records the failure and where a retry resumes (exit 4: /init stays, the next boot resumes).
 */
async function recordEnd(
  disk: FileHandle,
  found: ArmedDisk,
  journal: ArmedJournal,
  error: unknown,
  log: RunLog,
): Promise<void> {
  const reason = {
    code: isReimageError(error) ? error.code : 'REIMAGE_ARMED_RUN_FAILED',
    message: (error instanceof Error ? error.message : String(error)).slice(0, 256),
  };
  if (UNTOUCHED.includes(journal.state.stage)) {
    await journal.record({ type: 'refuse', reason });
    await disarmAfterRefusal(disk, found, journal, log);
    return;
  }
  try {
    if (journal.state.stage !== 'failed' && !FINAL_STAGES.includes(journal.state.stage)) {
      await journal.record({ type: 'fail', reason });
      log.warn(`failed at stage ${journal.state.failedAt ?? '?'} (${reason.code}); the next boot resumes there`);
    }
  } catch (recordError) {
    log.warn(`could not record the failure in the journal: ${String(recordError)}`);
  }
}

/**
 * The disarm of a refused run, safe to repeat (a cut in the middle of it is finished by the next
 * boot): the bundle room wiped (private keys), then the saved LBA 0 back — only if it is the one
 * arm saved (its digest in the journal), a boot sector, and holds the partition table the disk has
 * now. Throws (the machine stays: rebooting would only enter the recovery path again) if LBA 0
 * cannot be given back.
 */
async function disarmAfterRefusal(
  disk: FileHandle,
  found: ArmedDisk,
  journal: ArmedJournal,
  log: RunLog,
): Promise<void> {
  await wipeItemRaw(disk, item(found.header, 'bundle'));
  const savedItem = item(found.header, 'old-lba0');
  const current = Buffer.alloc(SECTOR_BYTES);
  await disk.read(current, 0, SECTOR_BYTES, 0);
  const saved = (await readItemRaw(disk, savedItem)).subarray(0, SECTOR_BYTES);
  if (current.equals(saved)) {
    log.info('the old LBA 0 is already back');
    return;
  }
  const problems: string[] = [];
  if ((await sha256ItemRaw(disk, savedItem)) !== journal.state.refugeSha256['old-lba0']) {
    problems.push("the saved LBA 0 does not match arm's digest");
  }
  if (saved[510] !== 0x55 || saved[511] !== 0xaa) problems.push('the saved LBA 0 is not a boot sector');
  if (!saved.subarray(440).equals(current.subarray(440)))
    problems.push('the partition table in LBA 0 changed since arm');
  if (problems.length > 0) {
    throw new ReimageError(
      'REIMAGE_ARMED_RUN_CANNOT_START',
      `The run refused, but the old LBA 0 cannot be given back safely (${problems.join('; ')}). The machine stays here: restore the boot loader by hand (grub-install) from a rescue system.`,
      { evidence: { device: found.device, problems: problems.join('; ') }, targetState: 'unknown' },
    );
  }
  await replaceSector({ path: found.device, kind: 'block-device', offsetBytes: 0, expected: current, next: saved });
  log.warn('refused before the disk was touched; the old LBA 0 is back: the old OS boots next');
}
