import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SectorRange } from '../../../src/boot/grub-blocklist.ts';
import { patchBootSector, patchCoreBlocklist } from '../../../src/boot/grub-boot-sector.ts';
import { type RecoveryDiskIdentity, recoveryGrubConfig } from '../../../src/boot/recovery-config.ts';
import { buildRecoveryCore, readGrubBootImage } from '../../../src/boot/recovery-core.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DebianKernel, ensureDebianKernel } from '../../../src/demo/debian-kernel.ts';
import { busyboxApplets, staticBusyboxPath } from '../../../src/demo/demo-initrd.ts';
import { runVm } from '../../../src/demo/qemu-vm.ts';
import { type ArchiveEntry, writeInitramfsArchive } from '../../../src/initramfs/newc-archive.ts';
import { requireTools } from '../demo/system-tools.ts';

const sectorBytes = 512;
const diskBytes = 64 * 1024 * 1024;
const marker = 'RECOVERY-MARKER';

/** /init of the marker initramfs: say what the boot path passed, then power off. */
const markerInit = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    reimage.*) echo "${marker} $arg" ;;
  esac
done
poweroff -f
`;

async function buildMarkerInitramfs(outPath: string): Promise<void> {
  const entries: ArchiveEntry[] = [
    { path: 'bin/busybox', kind: 'file', mode: 0o755, sourcePath: staticBusyboxPath },
    { path: 'init', kind: 'file', mode: 0o755, data: Buffer.from(markerInit) },
    { path: 'dev/console', kind: 'char-device', mode: 0o600, deviceMajor: 5, deviceMinor: 1 },
    { path: 'proc', kind: 'directory', mode: 0o755 },
  ];
  for (const applet of await busyboxApplets()) {
    entries.push({ path: `bin/${applet}`, kind: 'symlink', mode: 0o777, linkTarget: 'busybox' });
  }
  await writeInitramfsArchive(entries, outPath, { compression: 'zstd' });
}

async function readSectors(path: string, startLba: number, sectorCount: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(sectorCount * sectorBytes);
    await file.read(buffer, 0, buffer.length, startLba * sectorBytes);
    return buffer;
  } finally {
    await file.close();
  }
}

async function writeSectors(path: string, startLba: number, data: Buffer): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.write(data, 0, data.length, startLba * sectorBytes);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Writes `data` into the ranges in order, the last one padded with zeros to its end. */
async function writeIntoRanges(path: string, data: Buffer, ranges: readonly SectorRange[]): Promise<void> {
  let offsetBytes = 0;
  for (const range of ranges) {
    const chunk = Buffer.alloc(range.sectorCount * sectorBytes);
    data.copy(chunk, 0, offsetBytes, offsetBytes + chunk.length);
    offsetBytes += chunk.length;
    await writeSectors(path, range.startLba, chunk);
  }
  assert.ok(offsetBytes >= data.length, 'the ranges hold the whole file');
}

function sectorsFor(sizeBytes: number): number {
  return Math.ceil(sizeBytes / sectorBytes);
}

interface DiskCase {
  readonly name: string;
  /** sfdisk's script for the old disk's table. */
  readonly table: string;
  readonly identity: RecoveryDiskIdentity;
  /** Where core.img goes: msdos in a gap between partitions, GPT in 34–2047. */
  readonly coreLba: number;
  /** Where the kernel's two fragments, the initramfs and the refuge go (all free of the table). */
  readonly payloadLba: number;
}

const cases: readonly DiskCase[] = [
  {
    name: 'msdos',
    table: 'label: dos\nlabel-id: 0x5eed1e55\nstart=2048, size=16384, type=83\nstart=100000, type=83\n',
    identity: { scheme: 'msdos', signature: 0x5eed1e55 },
    coreLba: 20000,
    payloadLba: 24000,
  },
  {
    name: 'GPT',
    table:
      'label: gpt\nlabel-id: 3F2A61C4-7B0E-4D8C-9A55-1E2B3C4D5E6F\nstart=2048, size=98304, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n',
    identity: { scheme: 'gpt', diskGuid: '3f2a61c4-7b0e-4d8c-9a55-1e2b3c4d5e6f' },
    coreLba: 34,
    payloadLba: 4096,
  },
];

describe('the recovery boot path boots a kernel and initramfs from sector ranges (QEMU, SeaBIOS)', () => {
  let scratch: string;
  let kernel: DebianKernel;
  let initramfsPath: string;

  before(async () => {
    requireTools({
      sfdisk: 'fdisk',
      'grub-mkimage': 'grub-common',
      busybox: 'busybox-static',
      'qemu-system-x86_64': 'qemu-system-x86',
    });
    scratch = await mkdtemp(join(tmpdir(), 'reimage-recovery-boot-'));
    kernel = await ensureDebianKernel();
    initramfsPath = join(scratch, 'marker.initramfs');
    await buildMarkerInitramfs(initramfsPath);
  });

  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  for (const diskCase of cases) {
    it(`on an ${diskCase.name} disk: the kernel in one range, the initramfs in three fragments out of disk order`, async () => {
      const diskPath = join(scratch, `${diskCase.name}.img`);
      await writeFile(diskPath, '');
      await runCommand('truncate', ['-s', String(diskBytes), diskPath]);
      await runCommand('sfdisk', ['--no-reread', '--no-tell-kernel', diskPath], { input: diskCase.table });
      const tableBefore = (await runCommand('sfdisk', ['--dump', diskPath])).stdout;
      const oldLba0 = await readSectors(diskPath, 0, 1);

      // The kernel in one range (GRUB 2.06 cannot read one file across blocklist fragments; see
      // kernelBlocklist); the initramfs in three fragments whose disk order is not the file order,
      // with gaps between them: GRUB must load them as separate files, in order, back to back.
      const kernelBytes = await readFile(kernel.vmlinuzPath);
      const kernelRanges: SectorRange[] = [
        { startLba: diskCase.payloadLba, sectorCount: sectorsFor(kernelBytes.length) },
      ];
      const initramfsBytes = await readFile(initramfsPath);
      const initramfsSectors = sectorsFor(initramfsBytes.length);
      const firstSectors = Math.floor(initramfsSectors / 3) + 5; // not a round split
      const secondSectors = Math.floor(initramfsSectors / 3) - 3;
      const thirdSectors = initramfsSectors - firstSectors - secondSectors;
      const afterKernelLba = diskCase.payloadLba + sectorsFor(kernelBytes.length) + 64;
      const third: SectorRange = { startLba: afterKernelLba, sectorCount: thirdSectors };
      const first: SectorRange = { startLba: third.startLba + thirdSectors + 17, sectorCount: firstSectors };
      const second: SectorRange = { startLba: first.startLba + firstSectors + 9, sectorCount: secondSectors };
      const initramfsRanges = [first, second, third];
      const refuge: SectorRange[] = [
        { startLba: 90000, sectorCount: 2048 },
        { startLba: 95000, sectorCount: 8 },
      ];
      const lastUsedLba = second.startLba + secondSectors;
      assert.ok(lastUsedLba < 90000, `the payload (up to LBA ${lastUsedLba}) stays clear of the refuge and the table`);

      await writeIntoRanges(diskPath, kernelBytes, kernelRanges);
      await writeIntoRanges(diskPath, initramfsBytes, initramfsRanges);
      const config = recoveryGrubConfig({
        kernel: kernelRanges,
        initramfs: initramfsRanges,
        refuge,
        disk: diskCase.identity,
      });
      const core = patchCoreBlocklist(await buildRecoveryCore({ config, workDir: scratch }), diskCase.coreLba);
      const coreEnd = diskCase.coreLba + core.length / sectorBytes;
      assert.ok(coreEnd <= (diskCase.name === 'GPT' ? 2048 : 100000), `core.img (to LBA ${coreEnd}) fits its gap`);
      await writeSectors(diskPath, diskCase.coreLba, core);
      await writeSectors(diskPath, 0, patchBootSector(oldLba0, await readGrubBootImage(), diskCase.coreLba));

      // GRUB stops at its prompt when loading fails: end the VM at once rather than at the timeout.
      const failFast = new AbortController();
      const serial: string[] = [];
      const result = await runVm({
        diskPath,
        memoryMiB: 512,
        cpuCount: 1,
        timeoutMs: 180_000,
        signal: failFast.signal,
        onSerialLine: (line) => {
          serial.push(line);
          if (line.includes('could not start its')) failFast.abort(new Error(`GRUB failed:\n${serial.join('\n')}`));
        },
      });
      const lines = result.serialLog.split('\n');
      const expectedDisk =
        diskCase.identity.scheme === 'msdos' ? 'msdos:5eed1e55' : 'gpt:3f2a61c4-7b0e-4d8c-9a55-1e2b3c4d5e6f';
      assert.ok(
        lines.includes(`${marker} reimage.refuge=90000+2048,95000+8`),
        `the marker initramfs printed the refuge; serial log tail:\n${result.serialLog.slice(-3000)}`,
      );
      assert.ok(
        lines.includes(`${marker} reimage.disk=${expectedDisk}`),
        'the marker initramfs printed the disk identity',
      );
      assert.equal(result.ending, 'poweroff');

      const lba0After = await readSectors(diskPath, 0, 1);
      assert.ok(lba0After.subarray(440).equals(oldLba0.subarray(440)), 'bytes 440–511 of LBA 0 are the old ones');
      assert.equal(
        (await runCommand('sfdisk', ['--dump', diskPath])).stdout,
        tableBefore,
        'the partition table reads the same',
      );
      await rm(diskPath, { force: true });
    });
  }
});
