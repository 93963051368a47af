import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';

interface PackageJson {
  readonly name?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
}

async function readPackageJson(path: string): Promise<PackageJson> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PackageJson;
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_PROJECT_INVALID',
      `Cannot read "${path}". Run "npm ci" in the project directory and build again.`,
      { evidence: { file: path }, cause: e },
    );
  }
}

/**
 * The installed directories of the production dependencies, found as Node resolves them (the
 * package's own node_modules first, then each parent's): `dependencies`, and the
 * `optionalDependencies` that are installed (the platform package of a native addon). Never
 * devDependencies. Returns host directories, sorted.
 */
export async function productionPackageDirs(projectDir: string): Promise<string[]> {
  const found = new Set<string>();
  const visit = async (packageDir: string, required: boolean): Promise<void> => {
    const manifest = await readPackageJson(join(packageDir, 'package.json'));
    const wanted: [string, boolean][] = [
      ...Object.keys(manifest.dependencies ?? {}).map((name): [string, boolean] => [name, true]),
      ...Object.keys(manifest.optionalDependencies ?? {}).map((name): [string, boolean] => [name, false]),
    ];
    for (const [name, isRequired] of wanted) {
      let dir: string | undefined;
      for (let base = packageDir; ; ) {
        const candidate = join(base, 'node_modules', name);
        if (existsSync(join(candidate, 'package.json'))) {
          dir = candidate;
          break;
        }
        if (base === projectDir || !base.startsWith(projectDir)) break;
        const up = base.lastIndexOf(`${sep}node_modules${sep}`);
        if (up < 0) break;
        base = base.slice(0, up);
      }
      if (dir === undefined) {
        if (isRequired && required) {
          throw new ReimageError(
            'REIMAGE_INITRAMFS_PROJECT_INVALID',
            `The dependency "${name}" of "${packageDir}" is not installed. Run "npm ci" in ${projectDir} and build again.`,
            { evidence: { path: packageDir, expected: name } },
          );
        }
        continue;
      }
      if (found.has(dir)) continue;
      found.add(dir);
      await visit(dir, isRequired);
    }
  };
  await visit(projectDir, true);
  return [...found].sort();
}
