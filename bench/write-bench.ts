// The image writer against the original pipeline (`bzcat | dd bs=1M`), on the same realistic OS
// disk image and the same loop-device target, in the same run. Speed is measured, never asserted.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from '../src/core/cache-dir.ts';
import { loadBlockMap } from '../src/image/index.ts';
import { ensureOsDiskImage } from './fixtures/os-disk-image.ts';

const MIB = 1024 * 1024;
const NODE = process.execPath;
const WRITE_ONCE = join(import.meta.dirname, 'fixtures', 'write-once.ts');

interface Row {
  readonly what: string;
  readonly seconds: number;
  readonly peakRssMiB?: number;
  readonly note?: string;
}

function timed(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { seconds: number; stdout: string } {
  const startedMs = performance.now();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 16 * MIB, env });
  const seconds = (performance.now() - startedMs) / 1000;
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  }
  return { seconds, stdout: result.stdout };
}

/** A 2 GiB + 64 MiB target filled with 0xA5 once, so a writer that skipped zeros would leave garbage. */
function ensureTarget(sizeBytes: number): string {
  const path = join(cacheDir(), 'bench', 'write-target.img');
  if (existsSync(path)) return path;
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(16 * MIB, 0xa5);
    for (let at = 0; at < sizeBytes; at += chunk.length)
      writeSync(fd, chunk, 0, Math.min(chunk.length, sizeBytes - at), at);
  } finally {
    closeSync(fd);
  }
  return path;
}

function ours(what: string, args: readonly string[], env?: NodeJS.ProcessEnv): Row {
  const { seconds, stdout } = timed(NODE, [WRITE_ONCE, ...args], env);
  const summary = JSON.parse(stdout) as {
    peakRssBytes: number;
    bytesWritten: number;
    bytesZeroed: number;
    directIo: boolean;
  };
  return {
    what,
    seconds,
    peakRssMiB: summary.peakRssBytes / MIB,
    note: `wrote ${(summary.bytesWritten / MIB).toFixed(0)} MiB, kernel-zeroed ${(summary.bytesZeroed / MIB).toFixed(0)} MiB${summary.directIo ? ', O_DIRECT' : ''}`,
  };
}

export async function runWriteBench(): Promise<string> {
  const log = {
    info: (m: string) => process.stderr.write(`write-bench: ${m}\n`),
    warn: (m: string) => process.stderr.write(`write-bench: ${m}\n`),
  };
  const image = await ensureOsDiskImage(log);
  const map = await loadBlockMap(image.bmapPath);
  const backing = ensureTarget(image.sizeBytes + 64 * MIB);
  const loop = execFileSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' }).trim();
  const rows: Row[] = [];
  try {
    log.info(
      `target ${loop}; image ${(image.sizeBytes / MIB).toFixed(0)} MiB, ${((100 * map.mappedBytes) / image.sizeBytes).toFixed(1)} % mapped`,
    );
    rows.push({
      what: 'baseline: bzcat .bz2 | dd bs=1M conv=fsync',
      ...timed('sh', ['-c', 'bzcat "$0" | dd of="$1" bs=1M conv=fsync status=none', image.bz2Path, loop]),
    });
    rows.push(ours('reimage write .bz2 (with size-counting pass)', [image.bz2Path, loop]));
    rows.push(
      ours('reimage write .bz2, size given (--image-size)', [image.bz2Path, loop, '-', String(image.sizeBytes)]),
    );
    rows.push(ours('reimage write .gz (with size-counting pass)', [image.gzPath, loop]));
    rows.push(ours('reimage write .xz', [image.xzPath, loop]));
    rows.push(ours('reimage write .zst', [image.zstPath, loop]));
    rows.push(ours('reimage write .zst + bmap', [image.zstPath, loop, image.bmapPath]));
    rows.push(
      ours('reimage write .zst + bmap, no compile cache', [image.zstPath, loop, image.bmapPath], {
        ...process.env,
        REIMAGE_BENCH_COMPILE_CACHE: '0',
      }),
    );
    rows.push({
      what: 'bmaptool copy .zst + bmap',
      ...timed('bmaptool', ['-q', 'copy', '--bmap', image.bmapPath, image.zstPath, loop]),
    });
    const decode = timed('sh', ['-c', 'zstd -dc "$0" > /dev/null', image.zstPath]);
    rows.push({ what: 'floor: zstd -dc .zst > /dev/null', seconds: decode.seconds });
    const mappedMiB = Math.ceil(map.mappedBytes / MIB);
    const write = timed('dd', [
      'if=/dev/zero',
      `of=${loop}`,
      'bs=1M',
      `count=${mappedMiB}`,
      'oflag=direct',
      'conv=fsync',
      'status=none',
    ]);
    rows.push({ what: `floor: dd oflag=direct of the ${mappedMiB} MiB mapped`, seconds: write.seconds });
  } finally {
    spawnSync('losetup', ['-d', loop]);
  }
  const baseline = rows[0]?.seconds ?? Number.NaN;
  const lines = [
    `${'what'.padEnd(52)} ${'time'.padStart(8)} ${'vs base'.padStart(8)} ${'peak RSS'.padStart(9)}  note`,
    ...rows.map(
      (row) =>
        `${row.what.padEnd(52)} ${`${row.seconds.toFixed(2)} s`.padStart(8)} ${`${(baseline / row.seconds).toFixed(1)}x`.padStart(8)} ${(row.peakRssMiB === undefined ? '' : `${row.peakRssMiB.toFixed(0)} MiB`).padStart(9)}  ${row.note ?? ''}`,
    ),
  ];
  const floor = Math.max(rows.at(-1)?.seconds ?? 0, rows.at(-2)?.seconds ?? 0);
  const mapped = rows.find((row) => row.what === 'reimage write .zst + bmap');
  const bmaptool = rows.find((row) => row.what.startsWith('bmaptool'));
  if (mapped !== undefined && bmaptool !== undefined) {
    lines.push(
      `.zst + bmap: ${(mapped.seconds / floor).toFixed(2)}x the floor (max of decode and write), ${(mapped.seconds / bmaptool.seconds).toFixed(2)}x bmaptool's time`,
    );
  }
  return lines.join('\n');
}

if (import.meta.main) process.stdout.write(`${await runWriteBench()}\n`);
