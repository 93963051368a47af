import { existsSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { sharedLibraryClosure } from './elf-closure.ts';
import { describeHostPaths, type HostEntry } from './host-entry.ts';
import { hostPathChain } from './host-path-chain.ts';

/** Where tools are looked for besides PATH (a non-root PATH often lacks the sbin directories). */
const EXTRA_TOOL_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** A tool the runner spawns, found on this host with everything it needs to run in the initramfs. */
export interface ResolvedTool {
  readonly name: string;
  readonly hostPath: string;
  /** The symlinks on the way to the binary and the binary itself (hostPathChain). */
  readonly chain: readonly HostEntry[];
  /** Its shared-library closure, loader included. */
  readonly libraries: readonly HostEntry[];
}

/** A tool name looked up on PATH and the usual sbin/bin directories, or an absolute path checked. */
export function resolveToolPath(name: string, searchPath: string = process.env.PATH ?? ''): string {
  if (isAbsolute(name)) {
    if (existsSync(name)) return name;
  } else {
    const dirs = [...searchPath.split(delimiter).filter((d) => d !== ''), ...EXTRA_TOOL_DIRS];
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new ReimageError(
    'REIMAGE_TOOL_MISSING',
    `The tool "${name}" that the runner needs is not installed on this machine, so it cannot be put in the initramfs. Install it (for example with apt-get) and build again.`,
    { evidence: { path: name } },
  );
}

/** Each distinct name once, sorted, with its chain of links and its libraries. */
export async function resolveTools(names: readonly string[]): Promise<ResolvedTool[]> {
  const tools: ResolvedTool[] = [];
  for (const name of [...new Set(names)].sort()) {
    const hostPath = resolveToolPath(name);
    const chain = await describeHostPaths((await hostPathChain(hostPath)).map((link) => link.path));
    const libraries = await describeHostPaths(await sharedLibraryClosure(hostPath));
    tools.push({ name, hostPath, chain, libraries });
  }
  return tools;
}
