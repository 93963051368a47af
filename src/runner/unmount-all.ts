import type { Mounted } from '../disk/index.ts';

/**
 * Unmounts in reverse order of mounting (children before parents), emptying the list. Every
 * mount is tried even when one fails, so one busy filesystem does not leave the rest mounted;
 * the first failure is rethrown at the end.
 */
export async function unmountAll(mounts: Mounted[]): Promise<void> {
  let firstError: unknown;
  while (mounts.length > 0) {
    const mount = mounts.pop();
    if (mount === undefined) continue;
    try {
      await mount.unmount();
    } catch (error) {
      firstError ??= error;
    }
  }
  if (firstError !== undefined) throw firstError;
}
