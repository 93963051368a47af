#!/bin/bash
# zst + block map, this tree against BEFORE_TREE, alternating which goes first, with the floor
# (zstd -dc to /dev/null; writing the 180 MiB mapped takes a tenth of it). One JSON line per run.
# Usage: bench/zst-bmap-rounds.sh ROUNDS LOOP_DEVICE BEFORE_TREE >> results.jsonl
set -eu
ROUNDS=$1 LOOP=$2 BEFORE=$3
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${REIMAGE_CACHE_DIR:-$HOME/.cache/reimage}/bench/os-disk-bookworm-minbase-v1
NODE=$HERE/node_modules/.bin/node
row() {
  local name=$1; shift
  /usr/bin/time -f "{\"round\":$round,\"what\":\"$name\",\"wall\":%e,\"user\":%U,\"sys\":%S,\"maxRssKiB\":%M}" "$@" > /dev/null 2>> /tmp/zst-bmap-rounds.$$ || true
  tail -1 /tmp/zst-bmap-rounds.$$
}
ours() { row zst-bmap "$NODE" "$HERE/bench/fixtures/write-once.ts" "$D/disk.img.zst" "$LOOP" "$D/disk.bmap"; }
before() { row zst-bmap-before "$NODE" "$BEFORE/bench/fixtures/write-once.ts" "$D/disk.img.zst" "$LOOP" "$D/disk.bmap"; }
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then ours; before; else before; ours; fi
  row zst-floor-decode sh -c 'zstd -dc "$0" > /dev/null' "$D/disk.img.zst"
done
rm -f /tmp/zst-bmap-rounds.$$
