import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../core/logger.ts';
import { ARMED_REPORT_PATH, partitionTableSha256 } from '../runner/index.ts';
import { findInOldFilesystems, type OldDisk } from './old-disk.ts';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
/** What status needs of an armed run's report (ArmedRunReport, src/runner/armed-run.ts); more fields may follow. */
const armedReportSchema = z.object({
  result: z.literal('ok'),
  mode: z.literal('armed'),
  finishedAt: z.iso.datetime({ offset: false }),
  attempt: z.int().min(0),
  image: z.object({ format: z.string(), sha256: sha256Hex, sizeBytes: z.int().min(0) }),
  partitionTableSha256: sha256Hex,
});

/** The finished reimage as `status` reports it (`done` in docs/arm.md). */
export interface ArmedDone {
  /** Where the report was read: partition number and the path in its filesystem. */
  readonly partition: number;
  readonly reportPath: string;
  /** When the run wrote the report (the end of its restore, before the commit). */
  readonly finishedAt: string;
  readonly attempt: number;
  readonly image: { readonly format: string; readonly sha256: string; readonly sizeBytes: number };
}

/**
 * Whether `text` is an armed run's report for the disk whose LBA 0 is `lba0`: a successful armed
 * run, whose commit wrote the partition table LBA 0 holds now. The boot code (bytes 0–439) is not
 * compared: the new OS may install its own boot loader, which keeps the table. Pure.
 */
export function doneFromReport(
  text: string,
  lba0: Buffer,
  where: { partition: number; reportPath: string },
): { ok: true; done: ArmedDone } | { ok: false; why: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, why: 'it is not JSON' };
  }
  const parsed = armedReportSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      why: `it is not a successful armed run's report (${issue?.path.join('.') ?? '?'}: ${issue?.message ?? '?'})`,
    };
  }
  const report = parsed.data;
  if (report.partitionTableSha256 !== partitionTableSha256(lba0)) {
    return { ok: false, why: "LBA 0's partition table is not the one that run's commit wrote" };
  }
  return {
    ok: true,
    done: { ...where, finishedAt: report.finishedAt, attempt: report.attempt, image: report.image },
  };
}

/**
 * The armed run's report on a disk LBA 0 no longer boots a refuge from: looked for at
 * ARMED_REPORT_PATH in each filesystem of the disk (read-only, or through the running OS's
 * mount), and trusted only as doneFromReport says. Changes nothing.
 */
export async function findArmedReport(
  disk: OldDisk,
  lba0: Buffer,
  o: { workDir: string; log: Logger },
): Promise<{ done?: ArmedDone; rejected: string[] }> {
  const rejected: string[] = [];
  const done = await findInOldFilesystems(
    disk,
    (partition) => partition.filesystem !== undefined,
    o,
    async (partition, dir) => {
      const text = await readFile(join(dir, ARMED_REPORT_PATH), 'utf8').catch(() => undefined);
      if (text === undefined) return undefined;
      const verdict = doneFromReport(text, lba0, { partition: partition.number, reportPath: `/${ARMED_REPORT_PATH}` });
      if (verdict.ok) return verdict.done;
      rejected.push(`partition ${partition.number}: /${ARMED_REPORT_PATH}: ${verdict.why}`);
      return undefined;
    },
  );
  return done === undefined ? { rejected } : { done, rejected };
}
