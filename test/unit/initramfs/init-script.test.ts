import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { initScript, shellQuote } from '../../../src/initramfs/init-script.ts';

describe('initScript', () => {
  const script = initScript({ disk: "/dev/disk with 'quote'", finish: 'poweroff', modules: ['virtio_blk', 'ext4'] });

  it('is valid sh', () => {
    const checked = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(checked.status, 0, `sh -n failed (install the Debian package dash): ${checked.stderr}`);
  });

  it('bakes the disk, finish and modules in, safely quoted', () => {
    assert.ok(script.includes(`DISK=${shellQuote("/dev/disk with 'quote'")}`));
    assert.ok(script.includes("FINISH='poweroff'"));
    assert.ok(script.includes("MODULES='virtio_blk ext4'"));
  });

  it('reboots only when the disk is untouched, and never exits', () => {
    assert.match(script, /\n {2}2\|3\)\n {4}reboot_untouched/);
    assert.match(script, /\n {2}\*\)\n {4}halt_touched/);
    assert.match(script, /halt_touched\(\) \{[^}]*while :; do sleep 3600; done/);
    assert.doesNotMatch(script, /^\s*exit\b/m);
  });

  it('quotes shell values', () => {
    const echoed = spawnSync('sh', ['-c', `printf %s ${shellQuote("a'b $c `d`")}`], { encoding: 'utf8' });
    assert.equal(echoed.stdout, "a'b $c `d`");
  });
});
