import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where built fixtures (kernels, demo disks, benchmark images) are cached, outside git.
 * REIMAGE_CACHE_DIR wins; then $XDG_CACHE_HOME/reimage; then ~/.cache/reimage.
 */
export function cacheDir(): string {
  const explicit = process.env.REIMAGE_CACHE_DIR;
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache');
  return join(base, 'reimage');
}
