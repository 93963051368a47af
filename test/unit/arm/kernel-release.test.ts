import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bzImageVersion, parseKernelRelease, releaseRunsNode } from '../../../src/arm/kernel-release.ts';

/** A minimal bzImage head: "HdrS" at 0x202, the version pointer at 0x20E, the string after. */
function fakeBzImage(version: string | undefined, magic = 'HdrS'): Buffer {
  const head = Buffer.alloc(0x1000);
  head.write(magic, 0x202, 'latin1');
  if (version !== undefined) {
    const at = 0x600;
    head.writeUInt16LE(at - 0x200, 0x20e);
    head.write(`${version}\0`, at, 'latin1');
  }
  return head;
}

describe('bzImageVersion', () => {
  it('reads the version string the boot-protocol header points at', () => {
    assert.equal(
      bzImageVersion(fakeBzImage('4.19.0-27-amd64 (debian-kernel@lists.debian.org) #1 SMP')),
      '4.19.0-27-amd64 (debian-kernel@lists.debian.org) #1 SMP',
    );
  });

  it('refuses what is not a bzImage: no magic, no pointer, a pointer past the end, no number', () => {
    assert.equal(bzImageVersion(fakeBzImage('6.1.0', 'ELF\0')), undefined);
    assert.equal(bzImageVersion(fakeBzImage(undefined)), undefined);
    const pastEnd = fakeBzImage('6.1.0');
    pastEnd.writeUInt16LE(0xfff0, 0x20e);
    assert.equal(bzImageVersion(pastEnd), undefined);
    assert.equal(bzImageVersion(fakeBzImage('garbage')), undefined);
    assert.equal(bzImageVersion(Buffer.alloc(16)), undefined);
  });
});

describe('releaseRunsNode', () => {
  it('draws the line at Linux 4.18 (Node 24)', () => {
    assert.deepEqual(parseKernelRelease('4.18.0-553.el8.x86_64'), { major: 4, minor: 18 });
    assert.equal(releaseRunsNode('4.18.0-553.el8.x86_64'), true);
    assert.equal(releaseRunsNode('4.17.19'), false);
    assert.equal(releaseRunsNode('3.10.0-1160.el7.x86_64'), false);
    assert.equal(releaseRunsNode('5.4.0'), true);
    assert.equal(releaseRunsNode('10.0'), true);
    assert.equal(releaseRunsNode('x.y'), false);
  });
});
