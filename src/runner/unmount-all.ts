import type { Mounted } from '../disk/index.ts';

/** Unmounts in reverse order of mounting (children before parents), emptying the list. */
export async function unmountAll(mounts: Mounted[]): Promise<void> {
  while (mounts.length > 0) {
    const mount = mounts.pop();
    if (mount !== undefined) await mount.unmount();
  }
}
