import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { demoRetainedKeysCheck, type RetainedKeysCheck, runPowerCutTrial } from '../../src/demo/power-cut-trial.ts';
import { armDemoDisk } from '../helpers/arm-demo.ts';
import { cutForSeed } from '../helpers/power-cuts.ts';

// Power cuts during the armed run, under QEMU: the armed disk boots by its own BIOS path, QEMU is
// killed (SIGKILL) at a seeded moment, and the disk is booted again until the new OS comes up.
// `npm run bench:power` runs many more trials and prints the figures.
const signal = AbortSignal.timeout(60 * 60_000);
// Seeds whose cuts fall in the write (14), the restore (3) and the commit (1); the bench draws many more.
const SEEDS = [14, 3, 1];

describe('power cuts during an armed reimage (QEMU, SIGKILL)', () => {
  let workspace: DemoWorkspace;
  let armedDiskPath = '';
  let retainedKeys: RetainedKeysCheck;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-power-cut');
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    armedDiskPath = join(workspace.dir, 'armed.img');
    await runCommand('cp', ['--sparse=always', workspace.diskPath, armedDiskPath]);
    retainedKeys = await demoRetainedKeysCheck(workspace.fixtures, armedDiskPath);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  for (const seed of SEEDS) {
    const cut = cutForSeed(seed);
    it(`seed ${seed}: a cut ${cut.delayMs} ms after "${cut.marker}" resumes and ends in the new OS with the old identity`, async () => {
      const result = await runPowerCutTrial({
        armedDiskPath,
        diskPath: join(workspace.dir, `trial-${seed}.img`),
        fixtures: workspace.fixtures,
        cut,
        retainedKeys,
        signal,
      });
      const logs = () =>
        result.serialLogs.map((log, index) => `--- boot ${index + 1} ---\n${log.slice(-2500)}`).join('\n');
      assert.equal(result.bricked, false, `no boot may reach nothing: ${result.boots.join(', ')}\n${logs()}`);
      assert.ok(result.identity !== undefined, `the new OS came up: ${result.boots.join(', ')}\n${logs()}`);
      assert.equal(result.identityKept, true, `machine-id and SSH host keys kept\n${logs()}`);
      assert.equal(result.bundleLeft, false, 'no retention bundle (private keys) left on the raw disk');
      assert.equal(result.strayKeyBytes, '', `the old keys' bytes only where they may be:\n${result.strayKeyBytes}`);
      await runCommand('rm', ['-f', join(workspace.dir, `trial-${seed}.img`)]);
    });
  }
});
