import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../core/cache-dir.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';

export interface DebianKernel {
  /** e.g. "6.1.0-56-amd64" */
  readonly version: string;
  /** The kernel image to boot (vmlinuz). */
  readonly vmlinuzPath: string;
  /** The kernel's lib/modules/<version> directory, with modules.dep. */
  readonly modulesDir: string;
  /** The unpacked package root (holds boot/ and lib/). */
  readonly rootDir: string;
}

/** The linux-image-6.1.0-N-amd64 package that Debian's linux-image-amd64 depends on. */
export async function currentDebianKernelPackage(): Promise<string> {
  const { stdout } = await runCommand('apt-cache', ['depends', 'linux-image-amd64']);
  const match = /Depends:\s+(linux-image-[0-9][^\s]*-amd64)/.exec(stdout);
  if (match?.[1] === undefined) {
    throw new ReimageError(
      'REIMAGE_FIXTURE_KERNEL',
      'Could not find which kernel package linux-image-amd64 depends on. Run "apt-get update" and try again.',
      { evidence: { output: stdout.slice(0, 500) } },
    );
  }
  return match[1];
}

/**
 * A real Debian kernel for QEMU tests and the demo, fetched with `apt-get download` and
 * unpacked with `dpkg -x` into the cache (once). Nothing is installed on the host.
 */
export async function ensureDebianKernel(): Promise<DebianKernel> {
  const packageName = await currentDebianKernelPackage();
  const version = packageName.replace(/^linux-image-/, '');
  const rootDir = join(cacheDir(), 'kernel', version);
  const vmlinuzPath = join(rootDir, 'boot', `vmlinuz-${version}`);
  const modulesDir = join(rootDir, 'lib', 'modules', version);
  if (!existsSync(vmlinuzPath) || !existsSync(join(modulesDir, 'modules.dep'))) {
    const workDir = `${rootDir}.tmp-${process.pid}`;
    await rm(workDir, { recursive: true, force: true });
    await mkdir(workDir, { recursive: true });
    await runCommand('apt-get', ['download', packageName], { cwd: workDir });
    const debs = (await readdir(workDir)).filter((name) => name.endsWith('.deb'));
    const deb = debs[0];
    if (deb === undefined) {
      throw new ReimageError('REIMAGE_FIXTURE_KERNEL', `apt-get download ${packageName} produced no .deb`, {
        evidence: { dir: workDir },
      });
    }
    const unpackDir = join(workDir, 'root');
    await runCommand('dpkg', ['-x', join(workDir, deb), unpackDir]);
    // Debian ships modules.dep only after depmod runs at install time; run it here.
    await runCommand('depmod', ['-b', unpackDir, version]);
    await rm(rootDir, { recursive: true, force: true });
    await mkdir(join(rootDir, '..'), { recursive: true });
    await rename(unpackDir, rootDir);
    await rm(workDir, { recursive: true, force: true });
  }
  return { version, vmlinuzPath, modulesDir, rootDir };
}
