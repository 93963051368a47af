import { ReimageError } from '../core/reimage-error.ts';
import type { ManifestEntry } from './manifest.ts';
import type { OwnerPlan } from './owner-plan.ts';

/** What the root already has at an entry's place, as inspectRootPlaceSync found it (no symlink followed). */
export interface ObservedPlace {
  /** Ancestors (bundle paths) that do not exist yet. */
  readonly missingAncestors: readonly string[];
  /** What is at the entry's own path: nothing, a directory, a symlink, or something else. */
  readonly existing: 'directory' | 'symlink' | 'other' | null;
}

/**
 * How an entry gets into the root:
 * - `make-directory`, `reuse-directory`: a directory made, or the one there given the bundle's metadata;
 * - `replace`: built beside the existing entry, made durable, renamed over it (a crash leaves old or new);
 * - `create-beside`: a new regular file, built beside and renamed, so a half-written key never has its name;
 * - `create-in-place`: a new link or node, made whole by one call.
 */
export type RestoreHow = 'make-directory' | 'reuse-directory' | 'replace' | 'create-beside' | 'create-in-place';

export interface RestoreStep {
  readonly entry: ManifestEntry;
  readonly how: RestoreHow;
  /** The owner it gets in the new root (mapped by name, or as captured). */
  readonly uid: number;
  readonly gid: number;
}

export interface RestorePlan {
  /** Directories the root lacks, to create (0755, root:root) before anything else, parents first. */
  readonly createdParents: string[];
  /** One step per manifest entry, in manifest order. */
  readonly steps: RestoreStep[];
}

/**
 * What restore will do with each entry, from the manifest, what the root has at each entry's
 * place (`places[i]` for `entries[i]`) and the owner plan. Pure. A directory is never replaced by
 * a non-directory or the reverse: that is refused before anything is written.
 */
export function planRestore(
  entries: readonly ManifestEntry[],
  places: readonly ObservedPlace[],
  owners: Pick<OwnerPlan, 'uidMap' | 'gidMap'>,
): RestorePlan {
  const createdParents: string[] = [];
  const willExist = new Set<string>();
  const steps: RestoreStep[] = [];
  for (const [index, entry] of entries.entries()) {
    const place = places[index] ?? { missingAncestors: [], existing: null };
    for (const ancestor of place.missingAncestors) {
      if (!willExist.has(ancestor)) {
        createdParents.push(ancestor);
        willExist.add(ancestor);
      }
    }
    willExist.add(entry.path);
    const isDirectory = entry.type === 'directory';
    if (place.existing !== null && (place.existing === 'directory') !== isDirectory) {
      const actual =
        place.existing === 'directory' ? 'a directory' : place.existing === 'symlink' ? 'a symlink' : 'not a directory';
      throw new ReimageError(
        'REIMAGE_RETAIN_ROOT_CONFLICT',
        `${entry.path} is a ${entry.type} in the bundle but ${actual} in the new root. Nothing was restored; remove it from the new image or from the retention list.`,
        {
          evidence: {
            path: entry.path,
            expected: entry.type,
            actual: place.existing === 'directory' ? 'directory' : 'non-directory',
          },
        },
      );
    }
    const how: RestoreHow = isDirectory
      ? place.existing === null
        ? 'make-directory'
        : 'reuse-directory'
      : place.existing !== null
        ? 'replace'
        : entry.type === 'file'
          ? 'create-beside'
          : 'create-in-place';
    steps.push({
      entry,
      how,
      uid: owners.uidMap.get(entry.uid) ?? entry.uid,
      gid: owners.gidMap.get(entry.gid) ?? entry.gid,
    });
  }
  return { createdParents, steps };
}
