import { readFile } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../../core/reimage-error.ts';
import type { OwnerMode } from '../../retain/index.ts';
import {
  captureBundle,
  formatBundleListing,
  inspectBundle,
  parseRetainList,
  restoreBundle,
  verifyBundle,
} from '../../retain/index.ts';
import type { CommandSpec, ParsedArguments } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const INTRO = `Carries a machine's state (machine-id, SSH host keys, TLS keys, enrolment files, local config)
from one root filesystem to another, exactly: owners, modes (setuid/setgid/sticky), mtimes to
the nanosecond, xattrs, SELinux labels, ACLs, file capabilities, symlinks and hard links.
The bundle format is described in docs/retention-bundle.md.`;

const ownersOption = {
  name: 'owners',
  value: 'MODE',
  help: "by-name (default): owners get the ids their names have in DIR's /etc/passwd and\n/etc/group; by-id: the numbers are kept",
  choices: ['by-name', 'by-id'],
} as const;

const captureSpec: CommandSpec = {
  command: 'retain capture',
  summary: 'capture the listed paths of an old root into a bundle',
  description: `${INTRO}

capture reads the paths listed in FILE (one absolute path or glob per line; "#" comments;
a leading "?" marks a path optional) from the old root DIR into BUNDLE (mode 0600).
A missing required path fails before anything is written.`,
  positionals: [],
  options: [
    { name: 'root', value: 'DIR', help: 'the old root', required: true, mustExist: 'directory' },
    // Not mustExist: the verb reads it and says REIMAGE_RETAIN_LIST_UNREADABLE (exit 2 too) for any failure.
    { name: 'list', value: 'FILE', help: 'the retention list', required: true },
    { name: 'out', value: 'BUNDLE', help: 'the bundle to write', required: true, mustExist: 'new-file' },
    { name: 'json', help: 'progress and the summary as JSON lines' },
  ],
  examples: ['reimage retain capture --root /mnt/old --list examples/kiosk.retain --out /run/retain.tar'],
  changesTarget: false,
};

const restoreSpec: CommandSpec = {
  command: 'retain restore',
  summary: 'restore a bundle into a new root',
  description: `${INTRO}

restore checks the whole bundle, then writes it into the new root DIR.`,
  positionals: [],
  options: [
    { name: 'root', value: 'DIR', help: 'the new root', required: true, mustExist: 'directory' },
    { name: 'bundle', value: 'BUNDLE', help: 'the bundle', required: true, mustExist: 'file' },
    ownersOption,
    { name: 'json', help: 'progress and the summary as JSON lines' },
  ],
  examples: ['reimage retain restore --root /mnt/new --bundle /run/retain.tar'],
  changesTarget: true,
};

const verifySpec: CommandSpec = {
  command: 'retain verify',
  summary: 'compare a root with a bundle',
  description: `${INTRO}

verify re-reads every retained entry under DIR and compares it with the bundle; exits 0 only
if everything matches, 5 otherwise, listing each difference. It changes nothing.`,
  positionals: [],
  options: [
    { name: 'root', value: 'DIR', help: 'the root to check', required: true, mustExist: 'directory' },
    { name: 'bundle', value: 'BUNDLE', help: 'the bundle', required: true, mustExist: 'file' },
    ownersOption,
    { name: 'json', help: 'the differences and the summary as JSON' },
  ],
  examples: ['reimage retain verify --root /mnt/new --bundle /run/retain.tar'],
  changesTarget: false,
};

const inspectSpec: CommandSpec = {
  command: 'retain inspect',
  summary: 'list what a bundle holds',
  description: `${INTRO}

inspect lists what a bundle holds, like ls -l, owners as name(id).`,
  positionals: [],
  options: [
    { name: 'bundle', value: 'BUNDLE', help: 'the bundle', required: true, mustExist: 'file' },
    { name: 'json', help: 'the manifest as JSON' },
  ],
  examples: ['reimage retain inspect --bundle /run/retain.tar'],
  changesTarget: false,
};

function ownerMode(args: ParsedArguments): OwnerMode {
  // The spec's choices have been checked by the parser.
  return args.value('owners') === 'by-id' ? 'by-id' : 'by-name';
}

async function capture(context: VerbContext, args: ParsedArguments): Promise<number> {
  const listFile = args.required('list');
  const json = args.flag('json');
  let text: string;
  try {
    text = await readFile(listFile, 'utf8');
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_RETAIN_LIST_UNREADABLE',
      `Cannot read the retention list ${listFile}. Check the path.`,
      {
        evidence: { file: listFile, actual: isSystemError(e) ? e.code : String(e) },
        cause: e,
      },
    );
  }
  const requests = parseRetainList(text, listFile);
  const progress = context.progressFor({ json: json });
  try {
    const summary = await captureBundle({
      root: args.required('root'),
      requests,
      bundlePath: args.required('out'),
      log: context.log,
      signal: context.signal,
      onProgress: progress,
    });
    progress.done();
    if (json) {
      context.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      context.stdout.write(`captured ${summary.entries} entries, ${summary.bytes} bytes of content\n`);
      for (const path of summary.missingOptional) context.stdout.write(`optional, not present: ${path}\n`);
      for (const skipped of summary.skipped) context.stdout.write(`skipped: ${skipped.path} (${skipped.reason})\n`);
    }
    return 0;
  } finally {
    progress.done();
  }
}

async function restore(context: VerbContext, args: ParsedArguments): Promise<number> {
  const json = args.flag('json');
  const progress = context.progressFor({ json: json });
  try {
    const summary = await restoreBundle({
      root: args.required('root'),
      bundlePath: args.required('bundle'),
      owners: ownerMode(args),
      log: context.log,
      signal: context.signal,
      onProgress: progress,
    });
    progress.done();
    if (json) {
      context.stdout.write(`${JSON.stringify(summary)}\n`);
    } else {
      context.stdout.write(`restored ${summary.entriesRestored} entries, ${summary.bytes} bytes of content\n`);
      for (const parent of summary.createdParents) context.stdout.write(`created missing directory: ${parent}\n`);
      for (const warning of summary.warnings) context.stdout.write(`warning: ${warning}\n`);
    }
    return 0;
  } finally {
    progress.done();
  }
}

async function verify(context: VerbContext, args: ParsedArguments): Promise<number> {
  const json = args.flag('json');
  const summary = await verifyBundle({
    root: args.required('root'),
    bundlePath: args.required('bundle'),
    owners: ownerMode(args),
    signal: context.signal,
  });
  if (json) {
    context.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    for (const d of summary.differences) {
      context.stdout.write(`${JSON.stringify(d.path)}: ${d.what}: expected ${d.expected}, found ${d.actual}\n`);
    }
    context.stdout.write(`${summary.entriesChecked} entries checked, ${summary.differences.length} differences\n`);
  }
  if (!summary.ok) {
    throw new ReimageError(
      'REIMAGE_RETAIN_VERIFY_MISMATCH',
      `${summary.differences.length} differences between the bundle and ${args.required('root')}. See the list above; restore again or investigate.`,
      // verify only reads: whatever it found, it changed nothing.
      { evidence: { differences: summary.differences.length, path: args.required('root') }, targetState: 'untouched' },
    );
  }
  return 0;
}

async function inspect(context: VerbContext, args: ParsedArguments): Promise<number> {
  const json = args.flag('json');
  const manifest = await inspectBundle(args.required('bundle'), context.signal);
  context.stdout.write(json ? `${JSON.stringify(manifest)}\n` : `${formatBundleListing(manifest).join('\n')}\n`);
  return 0;
}

export const retainVerb: Verb = defineVerb({
  name: 'retain',
  summary: 'capture, restore, verify and inspect a retention bundle (retain capture|restore|verify|inspect)',
  commands: [
    { spec: captureSpec, run: capture },
    { spec: restoreSpec, run: restore },
    { spec: verifySpec, run: verify },
    { spec: inspectSpec, run: inspect },
  ],
});
