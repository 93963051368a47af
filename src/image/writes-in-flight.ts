import { ReimageError } from '../core/reimage-error.ts';

/**
 * The writes a sink has issued and not yet seen finish, the first failure among them, and whether
 * the target was touched: what the plain writer's BlockSink and the armed write's MappedSink both
 * keep. The first failure wins, and is marked touched once any write was issued.
 */
export class WritesInFlight {
  readonly #inFlight = new Set<Promise<void>>();
  #failure: unknown;
  #touched = false;
  readonly #onTouch: () => void;

  constructor(onTouch: () => void) {
    this.#onTouch = onTouch;
  }

  get touched(): boolean {
    return this.#touched;
  }

  /** Before the first write: calls onTouch once. */
  markTouched(): void {
    if (this.#touched) return;
    this.#touched = true;
    this.#onTouch();
  }

  /** Keeps `error` unless an earlier failure is kept already; returns the one kept. */
  fail(error: unknown): unknown {
    const marked = error instanceof ReimageError && this.#touched ? error.withTargetTouched() : error;
    this.#failure ??= marked;
    return this.#failure;
  }

  /** Throws the kept failure, if any. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  track(work: Promise<void>): void {
    const tracked = work.then(
      () => {
        this.#inFlight.delete(tracked);
      },
      (e: unknown) => {
        this.#inFlight.delete(tracked);
        this.fail(e);
      },
    );
    this.#inFlight.add(tracked);
  }

  /** Waits for all writes in flight; throws the first failure. */
  async drain(): Promise<void> {
    await Promise.all([...this.#inFlight]);
    this.throwIfFailed();
  }

  /** After a failure elsewhere: only lets the writes in flight settle. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }
}
