import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
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
import type { Verb, VerbContext } from '../verb.ts';

const USAGE = `reimage retain capture --root DIR --list FILE --out BUNDLE
reimage retain restore --root DIR --bundle BUNDLE [--owners by-name|by-id]
reimage retain verify  --root DIR --bundle BUNDLE [--owners by-name|by-id] [--json]
reimage retain inspect --bundle BUNDLE [--json]`;

const HELP = `${USAGE}

Carries a machine's state (machine-id, SSH host keys, TLS keys, enrolment files, local config)
from one root filesystem to another, exactly: owners, modes (setuid/setgid/sticky), mtimes to
the nanosecond, xattrs, SELinux labels, ACLs, file capabilities, symlinks and hard links.

capture  reads the paths listed in FILE (one absolute path or glob per line; "#" comments;
         a leading "?" marks a path optional) from the old root DIR into BUNDLE (mode 0600).
         A missing required path fails before anything is written.
restore  checks the whole bundle, then writes it into the new root DIR. With by-name (default)
         owners get the ids their names have in DIR's /etc/passwd and /etc/group.
verify   re-reads every retained entry under DIR and compares it with the bundle; exits 0 only
         if everything matches, 5 otherwise, listing each difference.
inspect  lists what a bundle holds, like ls -l, owners as name(id).

Example:
  reimage retain capture --root /mnt/old --list examples/kiosk.retain --out /run/retain.tar
  reimage retain restore --root /mnt/new --bundle /run/retain.tar
  reimage retain verify  --root /mnt/new --bundle /run/retain.tar

The bundle format is described in docs/retention-bundle.md.`;

function usage(message: string): ReimageError {
  return new ReimageError('REIMAGE_CLI_USAGE', `${message}\nUsage:\n${USAGE}`);
}

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usage(`--${name} is required.`);
  return value;
}

function ownerMode(value: unknown): OwnerMode {
  if (value === undefined || value === 'by-name') return 'by-name';
  if (value === 'by-id') return 'by-id';
  throw usage(`--owners must be by-name or by-id, not "${String(value)}".`);
}

type Options = Record<string, { type: 'string' } | { type: 'boolean' }>;

function parse(args: readonly string[], options: Options): { values: Record<string, string | boolean | undefined> } {
  try {
    const { values } = parseArgs({ args: [...args], options, allowPositionals: false, strict: true });
    return { values: values as Record<string, string | boolean | undefined> };
  } catch (e) {
    throw usage(e instanceof Error ? e.message : String(e));
  }
}

async function capture(context: VerbContext, args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    root: { type: 'string' },
    list: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  const listFile = required(values, 'list');
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
  const progress = context.progressFor({ json: values.json === true });
  try {
    const summary = await captureBundle({
      root: required(values, 'root'),
      requests,
      bundlePath: required(values, 'out'),
      log: context.log,
      signal: context.signal,
      onProgress: progress,
    });
    progress.done();
    if (values.json === true) {
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

async function restore(context: VerbContext, args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    root: { type: 'string' },
    bundle: { type: 'string' },
    owners: { type: 'string' },
    json: { type: 'boolean' },
  });
  const progress = context.progressFor({ json: values.json === true });
  try {
    const summary = await restoreBundle({
      root: required(values, 'root'),
      bundlePath: required(values, 'bundle'),
      owners: ownerMode(values.owners),
      log: context.log,
      signal: context.signal,
      onProgress: progress,
    });
    progress.done();
    if (values.json === true) {
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

async function verify(context: VerbContext, args: readonly string[]): Promise<number> {
  const { values } = parse(args, {
    root: { type: 'string' },
    bundle: { type: 'string' },
    owners: { type: 'string' },
    json: { type: 'boolean' },
  });
  const summary = await verifyBundle({
    root: required(values, 'root'),
    bundlePath: required(values, 'bundle'),
    owners: ownerMode(values.owners),
    signal: context.signal,
  });
  if (values.json === true) {
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
      `${summary.differences.length} differences between the bundle and ${values.root}. See the list above; restore again or investigate.`,
      { evidence: { differences: summary.differences.length, path: String(values.root) } },
    );
  }
  return 0;
}

async function inspect(context: VerbContext, args: readonly string[]): Promise<number> {
  const { values } = parse(args, { bundle: { type: 'string' }, json: { type: 'boolean' } });
  const manifest = await inspectBundle(required(values, 'bundle'), context.signal);
  context.stdout.write(
    values.json === true ? `${JSON.stringify(manifest)}\n` : `${formatBundleListing(manifest).join('\n')}\n`,
  );
  return 0;
}

const SUBVERBS: Readonly<Record<string, (context: VerbContext, args: readonly string[]) => Promise<number>>> = {
  capture,
  restore,
  verify,
  inspect,
};

export const retainVerb: Verb = {
  name: 'retain',
  summary: 'capture, restore, verify and inspect a retention bundle (retain capture|restore|verify|inspect)',
  help: HELP,
  async run(context) {
    const [sub, ...rest] = context.argv;
    const handler = sub === undefined ? undefined : SUBVERBS[sub];
    if (handler === undefined) {
      throw usage(sub === undefined ? 'Say what to do with a retention bundle.' : `Unknown "retain ${sub}".`);
    }
    return handler(context, rest);
  },
};
