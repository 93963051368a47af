import { findOnPath } from '../core/on-path.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { SYSTEM_TOOLS } from '../core/system-tool-list.ts';
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
function resolveToolPath(name: string): string {
  const found = findOnPath(name, EXTRA_TOOL_DIRS);
  if (found !== undefined) return found;
  const known = SYSTEM_TOOLS.find((tool) => tool.command === name);
  throw new ReimageError(
    'REIMAGE_TOOL_MISSING',
    `The tool "${name}" that the runner needs is not installed on this machine, so it cannot be put in the initramfs. Install it (${known === undefined ? 'with your package manager' : `apt-get install ${known.debianPackage}`}) and build again.`,
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
