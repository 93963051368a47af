/**
 * The fixed set of write blocks a sink cuts from its slab: a block is taken to be filled, given
 * back once every write from it settled, and a taker waits while all are in flight. This is the
 * back-pressure that makes the decoder wait for the disk (the plain writer's BlockSink and the
 * armed write's MappedSink share it).
 */
export class BlockPool {
  readonly #free: Buffer[] = [];
  readonly #waiters: Array<() => void> = [];

  /** Cuts `count` blocks of `blockBytes` from the start of `slab`. */
  constructor(slab: Buffer, count: number, blockBytes: number) {
    if (slab.length < count * blockBytes)
      throw new RangeError(`a slab of ${slab.length} bytes holds fewer than ${count} blocks`);
    for (let i = 0; i < count; i++) this.#free.push(slab.subarray(i * blockBytes, (i + 1) * blockBytes));
  }

  /** A free block now; throws when there is none (only the constructor's first take may use it). */
  takeNow(): Buffer {
    const block = this.#free.pop();
    if (block === undefined) throw new Error('no free write block');
    return block;
  }

  /**
   * The next free block, waiting while every block is in flight. `afterWait` runs each time a wait
   * ends, before the block is taken: the sink throws its first write failure there.
   */
  async take(afterWait: () => void): Promise<Buffer> {
    let block = this.#free.pop();
    while (block === undefined) {
      await new Promise<void>((resolvePromise) => this.#waiters.push(resolvePromise));
      afterWait();
      block = this.#free.pop();
    }
    return block;
  }

  /** Gives a block back (its writes settled) and wakes one waiter. */
  give(block: Buffer): void {
    this.#free.push(block);
    this.#waiters.shift()?.();
  }
}
