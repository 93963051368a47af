// Capture + restore of 10,000 small files with mixed owners and xattrs, ours next to GNU tar
// (`tar --xattrs --acls --selinux --numeric-owner -cpf`, then `-xpf`) on the same trees, in the
// same run. Two trees: mtimes with arbitrary nanoseconds (files written at run time, like keys),
// and whole-second mtimes (files installed from packages) — see docs/adr/0102.
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setAttributeSync } from '@napi-rs/xattr';
import { captureBundle, restoreBundle, verifyBundle } from '../src/retain/index.ts';

const FILES = 10_000;
const DIRS = 100;

function sh(command: string, args: readonly string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeExt4(base: string, name: string): { dir: string; cleanup(): void } {
  const image = join(base, `${name}.img`);
  const dir = join(base, name);
  sh('truncate', ['-s', '256M', image]);
  sh('mkfs.ext4', ['-q', '-F', '-N', '40000', '-O', '^has_journal', image]);
  const device = sh('losetup', ['-f', '--show', image]).trim();
  mkdirSync(dir);
  sh('mount', [device, dir]);
  return {
    dir,
    cleanup() {
      sh('umount', [dir]);
      sh('losetup', ['-d', device]);
    },
  };
}

function buildTree(root: string, wholeSeconds: boolean): void {
  writeFileSync(join(root, 'passwd'), '');
  for (let d = 0; d < DIRS; d += 1) {
    const dir = join(root, 'data', `dir-${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < FILES / DIRS; f += 1) {
      const path = join(dir, `file-${f}.conf`);
      writeFileSync(path, `setting-${d}-${f}=${'x'.repeat((d * 7 + f) % 300)}\n`, { mode: 0o640 });
      chownSync(path, 1000 + (f % 5), 1000 + (d % 3));
      setAttributeSync(path, 'user.origin', `bench-${d}-${f}`);
      if (wholeSeconds) utimesSync(path, 1_700_000_000 + f, 1_700_000_000 + f);
    }
    if (wholeSeconds) utimesSync(dir, 1_700_000_000, 1_700_000_000);
  }
}

async function timed<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const startedMs = performance.now();
  const result = await fn();
  return [performance.now() - startedMs, result];
}

async function benchTree(base: string, wholeSeconds: boolean): Promise<string[]> {
  const source = makeExt4(base, `old-${wholeSeconds}`);
  const target = makeExt4(base, `new-${wholeSeconds}`);
  try {
    buildTree(source.dir, wholeSeconds);
    sh('sync', []);
    const bundle = join(base, 'ours.tar');
    const tarFile = join(base, 'gnu.tar');
    const [oursCaptureMs] = await timed(() =>
      captureBundle({ root: source.dir, requests: [{ pattern: '/data', optional: false }], bundlePath: bundle }),
    );
    const [tarCaptureMs] = await timed(() =>
      sh('tar', ['--xattrs', '--acls', '--selinux', '--numeric-owner', '-cpf', tarFile, '-C', source.dir, 'data']),
    );
    mkdirSync(join(target.dir, 'ours'));
    mkdirSync(join(target.dir, 'gnu'));
    const [oursRestoreMs] = await timed(() =>
      restoreBundle({ root: join(target.dir, 'ours'), bundlePath: bundle, owners: 'by-id' }),
    );
    const [tarRestoreMs] = await timed(() =>
      sh('tar', [
        '--xattrs',
        '--xattrs-include=*',
        '--acls',
        '--selinux',
        '--numeric-owner',
        '-xpf',
        tarFile,
        '-C',
        join(target.dir, 'gnu'),
      ]),
    );
    const [verifyMs, verify] = await timed(() =>
      verifyBundle({ root: join(target.dir, 'ours'), bundlePath: bundle, owners: 'by-id' }),
    );
    const label = wholeSeconds ? 'whole-second mtimes' : 'nanosecond mtimes  ';
    const ratio = (ours: number, theirs: number): string => `${(ours / theirs).toFixed(2)}x`;
    return [
      `${label} capture: ours ${oursCaptureMs.toFixed(0)} ms, GNU tar ${tarCaptureMs.toFixed(0)} ms, ratio ${ratio(oursCaptureMs, tarCaptureMs)}`,
      `${label} restore: ours ${oursRestoreMs.toFixed(0)} ms, GNU tar ${tarRestoreMs.toFixed(0)} ms, ratio ${ratio(oursRestoreMs, tarRestoreMs)}`,
      `${label} total:   ours ${(oursCaptureMs + oursRestoreMs).toFixed(0)} ms, GNU tar ${(tarCaptureMs + tarRestoreMs).toFixed(0)} ms, ratio ${ratio(oursCaptureMs + oursRestoreMs, tarCaptureMs + tarRestoreMs)}`,
      `${label} verify (ours only): ${verifyMs.toFixed(0)} ms, ${verify.entriesChecked} entries, ${verify.differences.length} differences`,
    ];
  } finally {
    source.cleanup();
    target.cleanup();
  }
}

/** Returns printable lines: times of ours and GNU tar, and the ratio (below 1.00x: ours is faster). */
export async function runRetainBench(): Promise<string> {
  const base = mkdtempSync(join(tmpdir(), 'reimage-retain-bench-'));
  try {
    const lines = [
      `${FILES} files in ${DIRS} directories, 5 owners, 3 groups, one user.* xattr each, on ext4 loop devices`,
    ];
    lines.push(...(await benchTree(base, false)));
    lines.push(...(await benchTree(base, true)));
    return lines.join('\n');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
