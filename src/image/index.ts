export type { BlockMap, BmapChecksumType, MappedRange } from './block-map.ts';
export { loadBlockMap, parseBlockMap } from './block-map.ts';
export type { Decoder } from './decoder.ts';
export { createDecoder, DECODER_TOOLS, WRITER_TOOLS } from './decoder.ts';
export type { ImageFormat } from './image-format.ts';
export { detectImageFormat, formatFromMagic } from './image-format.ts';
export { sha256File } from './sha256-file.ts';
export type { WriteImageOptions, WriteSummary } from './write-image.ts';
export { writeImage } from './write-image.ts';
