import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findArm } from '../../src/arm/find-arm.ts';
import { decodeMapItem, readItemRaw } from '../../src/boot/index.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn } from '../../src/demo/demo-vm-session.ts';
import { runVm } from '../../src/demo/qemu-vm.ts';
import { armDemoDisk } from '../helpers/arm-demo.ts';
import { runReimage } from '../helpers/run-cli.ts';

// An armed disk boots its recovery path under QEMU with the disk opened through blkdebug, whose
// rules fail writes that touch one sector of the new image (docs/devel/testing/blkdebug.rst of
// QEMU 7.2: for a raw image the raw format fires `write_aio` before each guest write; `iotype`
// keeps reads alone; `sector` is in 512-byte units; `once` fails only the first match).
const signal = AbortSignal.timeout(60 * 60_000);
const EIO = 5;

/**
 * A sector the armed write writes, half-way through the mapped bytes (so some progress is durable
 * before it, and the resume is tested too), read from the refuge's own map.
 */
async function sectorInsideTheWrite(diskPath: string): Promise<number> {
  const disk = await open(diskPath, 'r');
  try {
    const found = await findArm(disk);
    assert.equal(found.kind, 'armed');
    if (found.kind !== 'armed') throw new Error('not armed');
    const mapItem = found.header.items.find((entry) => entry.name === 'map');
    assert.ok(mapItem, 'the refuge has a map');
    const map = decodeMapItem(await readItemRaw(disk, mapItem));
    const totalBytes = map.ranges.reduce((sum, range) => sum + range.lengthBytes, 0);
    let before = 0;
    for (const range of map.ranges) {
      if (before + range.lengthBytes > totalBytes / 2) {
        const offsetBytes = range.offsetBytes + Math.max(0, Math.floor(totalBytes / 2) - before);
        const sector = Math.floor(offsetBytes / 512);
        assert.ok(sector > 0, 'never LBA 0: the commit writes it, not the armed write');
        return sector;
      }
      before += range.lengthBytes;
    }
    throw new Error('the map has no bytes');
  } finally {
    await disk.close();
  }
}

async function writeRules(dir: string, name: string, sector: number, once: boolean): Promise<string> {
  const path = join(dir, `${name}.blkdebug.conf`);
  await writeFile(
    path,
    [
      '[inject-error]',
      'event = "write_aio"',
      'iotype = "write"',
      `errno = "${EIO}"`,
      `sector = "${sector}"`,
      `once = "${once ? 'on' : 'off'}"`,
      '',
    ].join('\n'),
  );
  return path;
}

describe('injected I/O errors in the armed run (QEMU blkdebug)', () => {
  let workspace: DemoWorkspace;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-io-errors');
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  it('a transient EIO on a write into the new image is retried in the run, which completes; the new OS boots', async () => {
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    const sector = await sectorInsideTheWrite(workspace.diskPath);
    const rules = await writeRules(workspace.dir, 'transient', sector, true);

    const recovery = await runVm({
      diskPath: workspace.diskPath,
      blkdebugConfigPath: rules,
      memoryMiB: 1024,
      timeoutMs: 30 * 60_000,
      signal,
    });
    const log = recovery.serialLog;
    const tail = `\n${log.slice(-4000)}`;
    assert.match(log, /step 2\/6 write/, tail);
    assert.match(
      log,
      /armed run attempt 1 of 3 failed: REIMAGE_TARGET_WRITE_FAILED/,
      `the injected error reached the run and was said${tail}`,
    );
    assert.match(log, /going on from stage writing \(attempt 2 of 3 in this boot\)/, tail);
    assert.match(log, /reimage complete \(armed run\)/, tail);
    assert.doesNotMatch(log, /Retry 1 of the armed run/, 'the run itself retried: /init had nothing to retry');
    assert.equal(recovery.ending, 'poweroff', tail);

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.equal(boot.identity?.osVersion, workspace.fixtures.newOsVersion, boot.serialLog.slice(-3000));
    assert.equal(boot.identity?.machineId, workspace.fixtures.oldIdentity.machineId);

    // The new OS's status is "done", from the armed run's report (the refuge is gone).
    const status = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const state = JSON.parse(status.stdout) as { state: string; done?: { image: { sha256: string } } };
    assert.equal(state.state, 'done', status.stdout);
    assert.equal(state.done?.image.sha256, workspace.fixtures.newImageSha256, status.stdout);
  });

  it('a persistent EIO stops the run: the log on the console, the failure in the journal, a retry announced, no reboot', async () => {
    await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    const sector = await sectorInsideTheWrite(workspace.diskPath);
    const rules = await writeRules(workspace.dir, 'persistent', sector, false);

    // The VM is stopped once /init announces its retry: waiting the minute for it proves nothing more.
    const stop = new AbortController();
    const lines: string[] = [];
    const run = runVm({
      diskPath: workspace.diskPath,
      blkdebugConfigPath: rules,
      memoryMiB: 1024,
      timeoutMs: 30 * 60_000,
      signal: AbortSignal.any([signal, stop.signal]),
      onSerialLine: (line) => {
        lines.push(line);
        if (line.includes('Retry 1 of the armed run in')) stop.abort();
      },
    });
    const ended = await run.then(
      (result) => `the VM ended by itself (${result.ending})`,
      (error: unknown) => (stop.signal.aborted ? 'stopped after the announcement' : String(error)),
    );
    const log = lines.join('\n');
    const tail = `\n${log.slice(-5000)}`;
    assert.equal(ended, 'stopped after the announcement', tail);
    for (const attempt of [1, 2, 3]) {
      assert.match(log, new RegExp(`armed run attempt ${attempt} of 3 failed: REIMAGE_TARGET_WRITE_FAILED`), tail);
    }
    assert.match(log, /reimage run --armed exited with 4/, tail);
    assert.match(log, /does not reboot/, tail);
    assert.match(log, /Last lines of \/run\/reimage\/console\.log/, tail);
    assert.match(log, / {2}\| .*REIMAGE_TARGET_WRITE_FAILED/, `the log's tail is on the console${tail}`);
    assert.match(log, /Diagnosis shells are open on tty2 and tty3/, tail);
    assert.match(log, /Retry 1 of the armed run in 60 s \(at \d\d:\d\d:\d\d UTC/, tail);
    assert.doesNotMatch(log, /reboot: (Restarting system|Power down)/, 'no reboot, no power-off');

    // Never silently: the journal on the disk says so, for status.
    const status = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const state = JSON.parse(status.stdout) as {
      state: string;
      reason?: { code: string };
      write?: { durableBytes: number; totalBytes: number };
    };
    assert.equal(state.state, 'failed', status.stdout);
    assert.equal(state.reason?.code, 'REIMAGE_TARGET_WRITE_FAILED', status.stdout);
    assert.ok(state.write !== undefined && state.write.durableBytes < state.write.totalBytes, status.stdout);
  });
});
