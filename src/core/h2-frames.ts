/**
 * HTTP/2 frame header constants (RFC 9113 sections 4.1, 6 and 6.10), for the code that reads
 * frame headers before nghttp2 does: the preface shim (http/h2/preface.ts), the request length
 * counter (http/h2/frame-counter.ts) and the upstream frame watch (upstream/h2-frame-watch.ts).
 */

/** The length of a frame header: 3 bytes length, 1 type, 1 flags, 4 stream id. */
export const FRAME_HEADER_SIZE = 9;

/** Frame types. */
export const enum FrameType {
  Data = 0x0,
  Headers = 0x1,
  RstStream = 0x3,
  Settings = 0x4,
  PushPromise = 0x5,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}

/** SETTINGS's ACK flag: the bit that is END_STREAM on DATA and HEADERS. */
export const ACK = 0x1;

/** Frame flags of DATA and HEADERS. */
export const enum FrameFlag {
  EndStream = 0x1,
  EndHeaders = 0x4,
  Padded = 0x8,
  Priority = 0x20,
}
