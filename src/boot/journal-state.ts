import { z } from 'zod';

/**
 * The armed run's journal state: what the recovery initramfs has made durable, so a boot after a
 * power cut knows where to go on. Like Mender's client, the run persists the next stage *before*
 * acting on it: `writing` is in the journal before the first destructive write, `hooks-started`
 * before the after-hooks run (so they run at most once), `done` only after LBA 0 is durable.
 *
 * The stages follow the run's steps 1–6 (docs/arm.md; release comes before the commit,
 * docs/adr/0608-release-before-commit.md):
 *   armed            — arm finished; no recovery boot has acted yet
 *   capturing        — step 1 began (capture from the untouched old disk; a cut just captures again)
 *   bundle-persisted — step 1 done: the retention bundle is in the refuge and flushed
 *   writing          — step 2: the disk may be touched from here on; `write.durableBytes` says how far
 *   written          — step 2 done: every mapped range except LBA 0 is durable
 *   restored         — step 3: bundle restored and verified, logs and report.json copied
 *   hooks-started    — step 3: the after-hooks are about to run (never run again after a cut)
 *   hooks-done       — step 3 done: after-hooks finished, new partitions unmounted
 *   bundle-wiped     — step 4 done: the bundle is gone from the refuge, its digests rechecked
 *   blocks-released  — step 5 done: the refuge's blocks are off the new ext filesystems' bad-block
 *                      lists; the refuge itself is still intact and LBA 0 still boots it
 *   done             — step 6 done: the new LBA 0 is durable; the new OS boots (final)
 *   refused          — a refusal before the first destructive write: disarmed, old OS boots (final)
 *   failed           — the disk was touched and an attempt failed; `failedAt` is where a retry resumes
 *
 * Two stages are only ever read, never entered: journals of the previous order (commit, then
 * release) may hold them, and a stage name keeps its meaning forever.
 *   committed        — previous order: the new LBA 0 is durable, the refuge's blocks are still on the
 *                      bad-block lists; the release is owed (`blocks-released` leads on to `done`)
 *   released         — previous order: committed and released (final, like `done`)
 */
export const JOURNAL_STAGES = [
  'armed',
  'capturing',
  'bundle-persisted',
  'writing',
  'written',
  'restored',
  'hooks-started',
  'hooks-done',
  'bundle-wiped',
  'blocks-released',
  'done',
  'refused',
  'failed',
  // Only in journals of the previous order (commit before release): read, never entered.
  'committed',
  'released',
] as const;

export type JournalStage = (typeof JOURNAL_STAGES)[number];

/**
 * Stages a `fail` can come from: the disk was touched and the run is not over (in the previous
 * order's `committed`, the release was still owed).
 */
const TOUCHED_STAGES = [
  'writing',
  'written',
  'restored',
  'hooks-started',
  'hooks-done',
  'bundle-wiped',
  'blocks-released',
  'committed',
] as const;
/** Stages a `refuse` can come from: nothing destructive was written yet, so disarming is safe. */
const UNTOUCHED_STAGES = ['armed', 'capturing', 'bundle-persisted'] as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected 64 lowercase hex digits' });
const isoTime = z.iso.datetime({ offset: false, error: 'expected an ISO 8601 UTC time' });
const byteCount = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * Bounds on every string and list keep the encoded state far below one slot's payload room (a
 * test encodes the largest state the schema allows), so a legal state always fits.
 */
const reasonSchema = z.strictObject({
  code: z.string().regex(/^REIMAGE_[A-Z0-9_]{1,56}$/, { error: 'expected a REIMAGE_ error code' }),
  message: z.string().max(256),
});

export const journalStateSchema = z
  .strictObject({
    stage: z.enum(JOURNAL_STAGES),
    /** Recovery attempts begun (each boot into the recovery path, each retry after a failure). */
    attempt: z.int().min(0).max(1_000_000),
    /** Digests of what arm put into the refuge, by name (image, kernel, initramfs, plan, core.img, old LBA 0…). */
    refugeSha256: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9.-]{0,23}$/), sha256Hex)
      .refine((record) => Object.keys(record).length <= 8, { error: 'at most 8 refuge digests' }),
    /** The persisted retention bundle's digest, from `bundle-persisted` until it is wiped. */
    bundleSha256: sha256Hex.optional(),
    /** Durable write progress: bytes of the mapped ranges, in write order, known to be on the disk. */
    write: z
      .strictObject({ durableBytes: byteCount, totalBytes: byteCount })
      .refine((w) => w.durableBytes <= w.totalBytes, { error: 'durableBytes must not exceed totalBytes' })
      .optional(),
    /** Why the run was refused or failed (the error's code and message), for `reimage status`. */
    reason: reasonSchema.optional(),
    /** For `failed`: the stage a retry resumes at. */
    failedAt: z.enum(TOUCHED_STAGES).optional(),
    armedAt: isoTime,
    updatedAt: isoTime,
  })
  .refine((s) => (s.stage === 'refused' || s.stage === 'failed') === (s.reason !== undefined), {
    error: 'a reason is present exactly when the stage is refused or failed',
  })
  .refine((s) => (s.stage === 'failed') === (s.failedAt !== undefined), {
    error: 'failedAt is present exactly when the stage is failed',
  });

export type JournalState = z.infer<typeof journalStateSchema>;
export type JournalReason = z.infer<typeof reasonSchema>;

/** What the run reports to the journal. Each event carries its time: the function stays pure. */
export type JournalEvent =
  | { readonly type: 'begin-attempt'; readonly at: string }
  | { readonly type: 'capture-started'; readonly at: string }
  | { readonly type: 'bundle-persisted'; readonly at: string; readonly bundleSha256: string }
  | { readonly type: 'write-started'; readonly at: string; readonly totalBytes: number }
  | { readonly type: 'write-progress'; readonly at: string; readonly durableBytes: number }
  | { readonly type: 'write-done'; readonly at: string }
  | { readonly type: 'restored'; readonly at: string }
  | { readonly type: 'hooks-started'; readonly at: string }
  | { readonly type: 'hooks-done'; readonly at: string }
  | { readonly type: 'bundle-wiped'; readonly at: string }
  | { readonly type: 'blocks-released'; readonly at: string }
  | { readonly type: 'committed'; readonly at: string }
  | { readonly type: 'refuse'; readonly at: string; readonly reason: JournalReason }
  | { readonly type: 'fail'; readonly at: string; readonly reason: JournalReason };

export type JournalEventType = JournalEvent['type'];

export type TransitionResult =
  | { readonly ok: true; readonly state: JournalState }
  | { readonly ok: false; readonly reason: string };

/** The first state, written by arm once the refuge is filled and read back. */
export function initialJournalState(armedAt: string, refugeSha256: Readonly<Record<string, string>>): JournalState {
  return journalStateSchema.parse({
    stage: 'armed',
    attempt: 0,
    refugeSha256: { ...refugeSha256 },
    armedAt,
    updatedAt: armedAt,
  });
}

/**
 * The one-step moves: event type, the stages it may come from, the stage it leads to. A data
 * table, so the legal graph can be read at a glance (and tested as a table). `capture-started` and
 * `write-progress` may repeat: a resumed capture starts over, progress advances in place.
 * `blocks-released` has two rows: in the previous order's `committed` the release was the last
 * step owed, so it ends the run.
 */
const MOVES: readonly {
  readonly event: JournalEventType;
  readonly from: readonly JournalStage[];
  readonly to: JournalStage;
}[] = [
  { event: 'capture-started', from: ['armed', 'capturing'], to: 'capturing' },
  { event: 'bundle-persisted', from: ['capturing'], to: 'bundle-persisted' },
  { event: 'write-started', from: ['bundle-persisted'], to: 'writing' },
  { event: 'write-progress', from: ['writing'], to: 'writing' },
  { event: 'write-done', from: ['writing'], to: 'written' },
  { event: 'restored', from: ['written'], to: 'restored' },
  { event: 'hooks-started', from: ['restored'], to: 'hooks-started' },
  { event: 'hooks-done', from: ['hooks-started'], to: 'hooks-done' },
  { event: 'bundle-wiped', from: ['hooks-done'], to: 'bundle-wiped' },
  { event: 'blocks-released', from: ['bundle-wiped'], to: 'blocks-released' },
  { event: 'blocks-released', from: ['committed'], to: 'done' },
  { event: 'committed', from: ['blocks-released'], to: 'done' },
  { event: 'refuse', from: UNTOUCHED_STAGES, to: 'refused' },
  { event: 'fail', from: TOUCHED_STAGES, to: 'failed' },
];

/** Stages after which nothing is left to attempt (`released`: the previous order's end). */
export const FINAL_STAGES: readonly JournalStage[] = ['done', 'released', 'refused'];

function isTouched(stage: JournalStage): stage is (typeof TOUCHED_STAGES)[number] {
  return (TOUCHED_STAGES as readonly JournalStage[]).includes(stage);
}

/**
 * The state after `event`, or why the event is illegal in `state` (e.g. `writing` after
 * `done`). Pure: no clock, no I/O. The result is checked against the schema, so a legal move
 * can never produce a state the journal would refuse to read back.
 */
export function nextState(state: JournalState, event: JournalEvent): TransitionResult {
  const refuse = (why: string): TransitionResult => ({
    ok: false,
    reason: `${event.type} is not allowed in stage ${state.stage}: ${why}`,
  });
  if (Date.parse(event.at) < Date.parse(state.updatedAt)) return refuse('its time is before the last update');
  let next: JournalState;
  if (event.type === 'begin-attempt') {
    if (FINAL_STAGES.includes(state.stage)) {
      return refuse('the run is over; nothing is left to attempt');
    }
    // A retry after a failure resumes where it failed; any other attempt resumes at its stage.
    const { reason: _reason, failedAt: _failedAt, ...rest } = state;
    next = state.stage === 'failed' && state.failedAt !== undefined ? { ...rest, stage: state.failedAt } : { ...state };
    next.attempt = state.attempt + 1;
  } else {
    const rows = MOVES.filter((row) => row.event === event.type);
    const move = rows.find((row) => row.from.includes(state.stage));
    if (move === undefined) {
      const from = rows.flatMap((row) => row.from);
      return refuse(`it may only follow ${from.length === 0 ? 'nothing' : from.join(', ')}`);
    }
    next = { ...state, stage: move.to };
    switch (event.type) {
      case 'bundle-persisted':
        next.bundleSha256 = event.bundleSha256;
        break;
      case 'write-started':
        next.write = { durableBytes: 0, totalBytes: event.totalBytes };
        break;
      case 'write-progress': {
        const write = state.write;
        if (write === undefined) return refuse('no write was started');
        // Progress only grows: a smaller figure would make a resume skip less than is durable
        // (harmless) or signal a bug (two writers); a larger one than the total is impossible.
        if (event.durableBytes < write.durableBytes) return refuse('durable progress never goes back');
        if (event.durableBytes > write.totalBytes) return refuse('progress beyond the total');
        next.write = { durableBytes: event.durableBytes, totalBytes: write.totalBytes };
        break;
      }
      case 'write-done':
        if (state.write === undefined || state.write.durableBytes !== state.write.totalBytes) {
          return refuse('not every byte is durable yet');
        }
        break;
      case 'bundle-wiped': {
        // The bundle holds private keys: once wiped, the journal forgets its digest too.
        const { bundleSha256: _bundle, ...rest } = next;
        next = rest;
        break;
      }
      case 'refuse':
        next.reason = event.reason;
        break;
      case 'fail':
        if (!isTouched(state.stage)) return refuse('only a touched disk fails; refuse instead');
        next.reason = event.reason;
        next.failedAt = state.stage;
        break;
      default:
        break;
    }
  }
  next.updatedAt = event.at;
  const checked = journalStateSchema.safeParse(next);
  if (!checked.success) return refuse(`the result breaks the schema: ${checked.error.issues[0]?.message ?? '?'}`);
  return { ok: true, state: checked.data };
}
