import type { SeededRandom } from './seeded-random.ts';

/**
 * What a parser returned: `invalid` says what breaks the parser's own promises (a range past the
 * image's end, a member past the archive's end); `outcome` names the kind of sound result, for
 * parsers that report problems as data instead of throwing (the plan loader).
 */
export interface ParseVerdict {
  readonly invalid?: string;
  readonly outcome?: string;
}

export const SOUND: ParseVerdict = {};

/**
 * One parser of untrusted input, as the fuzzer drives it. The contract every target checks: on
 * any input the parser returns a valid result or throws a ReimageError with a REIMAGE_… code and
 * a clear message; never another exception, never a hang, never an allocation the input's size
 * does not justify.
 */
export interface FuzzTarget {
  readonly name: string;
  /** Valid inputs made by our own writers (or taken from the repository's examples). */
  seeds(): Promise<Buffer[]>;
  /** Tokens the blind mutations insert: keywords, field names, numbers this format treats specially. */
  readonly dictionary: readonly string[];
  /** A mutation that knows the format (fixes checksums, rewrites length fields), so inputs get past the first check. */
  mutateStructure(input: Buffer, random: SeededRandom): Buffer;
  /** Parses `input`. Throws what the parser throws; otherwise says whether the result is sound. */
  parse(input: Buffer): Promise<ParseVerdict>;
  /** Releases scratch files. */
  close?(): Promise<void>;
}
