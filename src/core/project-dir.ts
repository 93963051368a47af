import { fileURLToPath } from 'node:url';

/** The reimage checkout this code runs from (the reimage initramfs carries its files). */
export const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));
