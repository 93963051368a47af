/** The archive is always merged-/usr, whatever the host is: these top-level names are symlinks. */
export const MERGED_USR_LINKS: Readonly<Record<string, string>> = {
  bin: 'usr/bin',
  sbin: 'usr/sbin',
  lib: 'usr/lib',
  lib64: 'usr/lib64',
};

/** The directories the merged-/usr links point at (`usr/bin`, …). */
export const MERGED_USR_DIRS: ReadonlySet<string> = new Set(Object.values(MERGED_USR_LINKS));

/** Host path → archive path, folding /bin, /sbin, /lib, /lib64 into /usr like merged-/usr does. */
export function archivePathForHost(hostPath: string): string {
  const relativePath = hostPath.replace(/^\/+/, '');
  const slash = relativePath.indexOf('/');
  const top = slash < 0 ? relativePath : relativePath.slice(0, slash);
  const merged = MERGED_USR_LINKS[top];
  if (merged === undefined) return relativePath;
  return slash < 0 ? merged : `${merged}${relativePath.slice(slash)}`;
}
