export interface RefugeExtent {
  readonly fileOffsetBytes: number; // where in the refuge file
  readonly diskOffsetBytes: number; // where on the whole disk (FIEMAP physical + partition start)
  readonly lengthBytes: number;
}
