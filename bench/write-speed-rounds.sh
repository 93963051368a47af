#!/bin/bash
# Interleaved rounds for docs/adr/0206 (issue 8 §6): the original pipeline against `reimage write`
# of the same .bz2/.gz onto the same loop device of exactly the image's size, and zst + bmap
# against its floor, one after the other in each round, so a loaded machine weighs on all alike.
# Usage: bench/write-speed-rounds.sh ROUNDS LOOP_DEVICE [BEFORE_TREE] >> results.jsonl
# The image comes from the bench's cache (REIMAGE_CACHE_DIR; build it with `npm run bench` once).
# BEFORE_TREE (a checkout of the writer before this change) adds its bzip2 and zst + bmap rows.
# Odd rounds run the original pipeline first, even rounds reimage first.
set -eu
ROUNDS=$1 LOOP=$2 BEFORE=${3:-}
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${REIMAGE_CACHE_DIR:-$HOME/.cache/reimage}/bench/os-disk-bookworm-minbase-v1
NODE=$HERE/node_modules/.bin/node
BZ2_SHA=$(sha256sum "$D/disk.img.bz2" | cut -d' ' -f1)
GZ_SHA=$(sha256sum "$D/disk.img.gz" | cut -d' ' -f1)
row() { # NAME COMMAND...: one JSON line with wall, user and system seconds
  local name=$1; shift
  /usr/bin/time -f "{\"round\":$round,\"what\":\"$name\",\"wall\":%e,\"user\":%U,\"sys\":%S,\"maxRssKiB\":%M}" "$@" > /dev/null 2>> /tmp/write-speed-rounds.$$ || true
  tail -1 /tmp/write-speed-rounds.$$
}
bz2_original() { row bz2-original sh -c 'bzcat "$0" | dd of="$1" bs=1M conv=fsync status=none' "$D/disk.img.bz2" "$LOOP"; }
bz2_reimage() { row bz2-reimage "$HERE/bin/reimage" write "$D/disk.img.bz2" "$LOOP" --sha256 "$BZ2_SHA" --json; }
gz_original() { row gz-original sh -c 'zcat "$0" | dd of="$1" bs=1M conv=fsync status=none' "$D/disk.img.gz" "$LOOP"; }
gz_reimage() { row gz-reimage "$HERE/bin/reimage" write "$D/disk.img.gz" "$LOOP" --sha256 "$GZ_SHA" --json; }
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then bz2_original; bz2_reimage; gz_original; gz_reimage
  else bz2_reimage; bz2_original; gz_reimage; gz_original; fi
  if [ -n "$BEFORE" ]; then
    row bz2-before "$BEFORE/bin/reimage" write "$D/disk.img.bz2" "$LOOP" --sha256 "$BZ2_SHA" --json
  fi
  row zst-bmap "$NODE" "$HERE/bench/fixtures/write-once.ts" "$D/disk.img.zst" "$LOOP" "$D/disk.bmap"
  if [ -n "$BEFORE" ]; then
    row zst-bmap-before "$NODE" "$BEFORE/bench/fixtures/write-once.ts" "$D/disk.img.zst" "$LOOP" "$D/disk.bmap"
  fi
  row zst-floor-write dd if=/dev/zero of="$LOOP" bs=1M count=180 oflag=direct conv=fsync status=none
  row zst-floor-decode sh -c 'zstd -dc "$0" > /dev/null' "$D/disk.img.zst"
done
rm -f /tmp/write-speed-rounds.$$
