import type { BundleManifest, ManifestEntry } from './manifest.ts';
import { checkBundle } from './read-bundle.ts';

/** Reads and fully checks a bundle (structure, manifest, digests) and returns its manifest. */
export async function inspectBundle(bundlePath: string, signal?: AbortSignal): Promise<BundleManifest> {
  return (await checkBundle(bundlePath, signal === undefined ? {} : { signal })).manifest;
}

const TYPE_CHARS: Readonly<Record<ManifestEntry['type'], string>> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  hardlink: 'h',
  fifo: 'p',
  'char-device': 'c',
  'block-device': 'b',
};

/** `rwxr-sr-t`-style permission text, setuid/setgid/sticky included. */
export function modeText(type: ManifestEntry['type'], mode: number): string {
  const bits = ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'].map((char, index) =>
    (mode >> (8 - index)) & 1 ? char : '-',
  );
  const special = (index: number, bit: number, set: string): void => {
    const executable = bits[index] === 'x';
    if (mode & bit) bits[index] = executable ? set : set.toUpperCase();
  };
  special(2, 0o4000, 's');
  special(5, 0o2000, 's');
  special(8, 0o1000, 't');
  return `${TYPE_CHARS[type]}${bits.join('')}`;
}

function timeText(mtimeNs: string): string {
  const ns = BigInt(mtimeNs);
  const seconds = ns / 1_000_000_000n;
  const fraction = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19).replace('T', ' ')}.${fraction}`;
}

/** Quotes names the way `ls --quoting-style=c` would only when they contain something unprintable. */
function nameText(path: string): string {
  return [...path].some((char) => char < ' ' || char === '\u007f') ? JSON.stringify(path) : path;
}

/** Lines like `ls -l`, owners as name(id); the manifest's header first. */
export function formatBundleListing(manifest: BundleManifest): string[] {
  const lines = [
    `bundle format ${manifest.format} v${manifest.version}, captured ${manifest.capturedAt} on ${manifest.sourceHost}`,
    `requested: ${manifest.requests.map((r) => `${r.optional ? '?' : ''}${r.pattern}`).join(', ')}`,
  ];
  if (manifest.missingOptional.length > 0) lines.push(`missing optional: ${manifest.missingOptional.join(', ')}`);
  for (const skipped of manifest.skipped) lines.push(`skipped: ${skipped.path} (${skipped.reason})`);
  for (const entry of manifest.entries) {
    const owner = `${entry.user ?? '?'}(${entry.uid})/${entry.group ?? '?'}(${entry.gid})`;
    const size =
      entry.type === 'char-device' || entry.type === 'block-device'
        ? `${entry.devMajor},${entry.devMinor}`
        : String(entry.sizeBytes);
    const link =
      entry.type === 'symlink'
        ? ` -> ${nameText(entry.linkTarget ?? '')}`
        : entry.type === 'hardlink'
          ? ` link to ${nameText(entry.linkTarget ?? '')}`
          : '';
    const xattrs = entry.xattrs.length > 0 ? ` [${entry.xattrs.join(' ')}]` : '';
    lines.push(
      `${modeText(entry.type, entry.mode)} ${owner} ${size} ${timeText(entry.mtimeNs)} ${nameText(entry.path)}${link}${xattrs}`,
    );
  }
  return lines;
}
