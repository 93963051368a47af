import type { SeededRandom } from './seeded-random.ts';

/** Single bytes that parsers treat specially: NUL, space, newline, '0', '7', '8', '=', sign bits. */
const INTERESTING_BYTES = [0x00, 0x01, 0x0a, 0x20, 0x30, 0x37, 0x38, 0x3d, 0x7f, 0x80, 0xfe, 0xff];

/** Text that parsers of numbers and records choke on, shared by every target. */
export const COMMON_TOKENS: readonly string[] = [
  '0',
  '-1',
  '7777777777777777777777',
  '99999999999999999999',
  '1152921504606846976', // 2^60
  '9007199254740993', // 2^53 + 1
  '4294967295',
  '4294967296',
  'NaN',
  '1e309',
  '0x10',
  '\0',
  ' ',
  '\n',
  '=',
  '../',
  '/',
  '\u00e9',
  '\ufffd',
];

export interface MutationContext {
  readonly random: SeededRandom;
  /** Target-specific tokens to insert (keywords, field names). */
  readonly dictionary: readonly string[];
  /** Other inputs to splice from. */
  readonly corpus: readonly Buffer[];
}

function randomRange(random: SeededRandom, length: number): [number, number] {
  const start = random.below(length + 1);
  // Mostly short ranges: long ones only destroy structure.
  const maxSpan = random.chance(0.8) ? 16 : length;
  const end = Math.min(length, start + random.below(maxSpan + 1));
  return [start, end];
}

/** One blind mutation: bit flip, interesting byte, token insert, truncation, duplication, deletion or splice. */
export function mutateOnce(input: Buffer, context: MutationContext): Buffer {
  const { random } = context;
  const length = input.length;
  switch (random.below(9)) {
    case 0: {
      if (length === 0) return input;
      const out = Buffer.from(input);
      const at = random.below(length);
      out[at] = (out[at] ?? 0) ^ (1 << random.below(8));
      return out;
    }
    case 1: {
      if (length === 0) return input;
      const out = Buffer.from(input);
      out[random.below(length)] = random.pick(INTERESTING_BYTES);
      return out;
    }
    case 2: {
      const token = Buffer.from(random.pick(random.chance(0.5) ? context.dictionary : COMMON_TOKENS), 'utf8');
      const at = random.below(length + 1);
      // Overwrite or insert: overwriting keeps offsets (and so the structure) intact.
      if (random.chance(0.5)) return Buffer.concat([input.subarray(0, at), token, input.subarray(at)]);
      const out = Buffer.from(input);
      token.copy(out, at);
      return out;
    }
    case 3:
      return input.subarray(0, random.below(length + 1));
    case 4: {
      const [start, end] = randomRange(random, length);
      const at = random.below(length + 1);
      return Buffer.concat([input.subarray(0, at), input.subarray(start, end), input.subarray(at)]);
    }
    case 5: {
      const [start, end] = randomRange(random, length);
      return Buffer.concat([input.subarray(0, start), input.subarray(end)]);
    }
    case 6: {
      if (context.corpus.length === 0) return input;
      const other = random.pick(context.corpus);
      const cut = random.below(length + 1);
      return Buffer.concat([input.subarray(0, cut), other.subarray(random.below(other.length + 1))]);
    }
    case 7: {
      const [start, end] = randomRange(random, length);
      const out = Buffer.from(input);
      out.fill(random.pick(INTERESTING_BYTES), start, end);
      return out;
    }
    default: {
      // A small arithmetic step on one ASCII digit, the mutation that walks length fields.
      const digits: number[] = [];
      for (let i = 0; i < length; i += 1) {
        const byte = input[i] ?? 0;
        if (byte >= 0x30 && byte <= 0x39) digits.push(i);
      }
      if (digits.length === 0) return input;
      const out = Buffer.from(input);
      const at = random.pick(digits);
      out[at] = 0x30 + (((out[at] ?? 0x30) - 0x30 + 1 + random.below(9)) % 10);
      return out;
    }
  }
}
