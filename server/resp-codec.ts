/**
 * RESP2, the Redis wire protocol, both ways: commands out (arrays of bulk strings) and answers in, read from a byte
 * stream that may split an answer anywhere (in a multi-byte character too: answers are cut by bytes, decoded after).
 */

export type RespArg = string | number | Buffer;

/** An error answer (`-ERR …`), named as ioredis names it, so callers tell it from a lost connection. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
}

/** A command as Redis reads it: a string when every argument is text (the usual case), else bytes. */
export function encodeCommand(args: readonly RespArg[]): string | Buffer {
  const pieces: (string | Buffer)[] = [];
  return appendCommand(pieces, args) ? joinBytes(pieces) : pieces.join('');
}

/**
 * Appends a command to `pieces`, the text of a write still to be joined (RespConnection joins a batch's commands in one
 * go): its headers, each argument and the line ends as pieces, most of them shared strings, rather than a string
 * built by concatenation, which made about 3.5 KB of short-lived strings a command (a request's five scripts were the
 * largest allocation on its path: 17 KB of 175, sampling heap profile). True when an argument is bytes (a `Buffer`):
 * `pieces` must then be joined as bytes (`joinBytes`).
 */
export function appendCommand(pieces: (string | Buffer)[], args: readonly RespArg[]): boolean {
  let bytes = false;
  pieces.push(
    args.length < ARRAY_HEADERS.length ? (ARRAY_HEADERS[args.length] as string) : `*${args.length}\r\n`,
  );
  for (const arg of args) {
    // Anything not text or bytes as its string, as a command built by hand may hold (`undefined`, a boolean).
    const text = typeof arg === 'string' || Buffer.isBuffer(arg) ? arg : String(arg);
    const length = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    bytes ||= typeof text !== 'string';
    pieces.push(
      length < BULK_HEADERS.length ? (BULK_HEADERS[length] as string) : `$${length}\r\n`,
      text,
      '\r\n',
    );
  }
  return bytes;
}

/** Pieces of which some are bytes, as one `Buffer` (text as UTF-8). */
export function joinBytes(pieces: readonly (string | Buffer)[]): Buffer {
  return Buffer.concat(pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece)));
}

const ARRAY_HEADERS = Array.from({ length: 64 }, (_, n) => `*${n}\r\n`);
const BULK_HEADERS = Array.from({ length: 512 }, (_, n) => `$${n}\r\n`);
const CR = 13;

/** What `next` answers while the buffered bytes do not hold a whole answer yet. */
export const INCOMPLETE = Symbol('incomplete');
/** An array's header was read: its elements follow. */
const OPENED = Symbol('opened');

/** An array being filled, element by element, across reads. */
interface Frame {
  readonly items: unknown[];
  filled: number;
}

/**
 * Answers as ioredis gives them by default: integers as numbers, bulk strings as text (null when absent), arrays (null
 * when absent), an error as a `ReplyError` (inside an array too: EXEC's answer holds one per failed command). Each
 * element is read once: an array cut by a read keeps what it has and goes on from the element that was cut, and a
 * long string's reads are joined once it has arrived whole (a reply log's answer can be megabytes, in 16 KB reads over
 * TLS).
 */
export class RespReader {
  private buffer: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** The buffer must reach this many bytes before the next element is worth reading again (a long bulk string). */
  private needed = 0;
  /** Reads that came while `needed` was still out of reach. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private readonly frames: Frame[] = [];

  push(chunk: Buffer): void {
    if (this.buffer.length + this.partBytes + chunk.length < this.needed) {
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      return;
    }
    if (this.pos >= this.buffer.length && this.parts.length === 0) this.buffer = chunk;
    else this.buffer = Buffer.concat([this.buffer.subarray(this.pos), ...this.parts, chunk]);
    this.needed = Math.max(0, this.needed - this.pos);
    this.pos = 0;
    this.parts = [];
    this.partBytes = 0;
  }

  /** The next whole answer, or `INCOMPLETE`. Throws on bytes that are not RESP2 (the connection is then unusable). */
  next(): unknown {
    for (;;) {
      if (this.buffer.length < this.needed || this.pos >= this.buffer.length) return INCOMPLETE;
      const start = this.pos;
      const value = this.element();
      if (value === INCOMPLETE) {
        this.pos = start;
        return INCOMPLETE;
      }
      this.needed = 0;
      if (value === OPENED) continue;
      const whole = this.place(value);
      if (whole !== INCOMPLETE) return whole;
    }
  }

  reset(): void {
    this.buffer = Buffer.alloc(0);
    this.pos = 0;
    this.needed = 0;
    this.parts = [];
    this.partBytes = 0;
    this.frames.length = 0;
  }

  /** Puts a value in the array being filled; answers the top-level value once every array around it is full. */
  private place(value: unknown): unknown {
    let done = value;
    for (let top = this.frames.at(-1); top; top = this.frames.at(-1)) {
      top.items[top.filled++] = done;
      if (top.filled < top.items.length) return INCOMPLETE;
      this.frames.pop();
      done = top.items;
    }
    return done;
  }

  private element(): unknown {
    const { buffer } = this;
    const end = buffer.indexOf(CR, this.pos);
    if (end < 0 || end + 1 >= buffer.length) return INCOMPLETE;
    const type = buffer[this.pos];
    const from = this.pos + 1;
    this.pos = end + 2;
    switch (type) {
      case 0x3a: // ':'
        return integer(buffer, from, end);
      case 0x24: // '$'
        return this.bulk(integer(buffer, from, end));
      case 0x2a: // '*'
        return this.open(integer(buffer, from, end));
      case 0x2b: // '+'
        return buffer.toString('utf8', from, end);
      case 0x2d: // '-'
        return new ReplyError(buffer.toString('utf8', from, end));
      default:
        throw new Error(`Redis sent something that is not RESP2 (a reply starting with byte ${type})`);
    }
  }

  private bulk(length: number): string | null | typeof INCOMPLETE {
    if (length < 0) return null;
    const end = this.pos + length;
    if (this.buffer.length < end + 2) {
      this.needed = end + 2;
      return INCOMPLETE;
    }
    const text = this.buffer.toString('utf8', this.pos, end);
    this.pos = end + 2;
    return text;
  }

  private open(length: number): unknown[] | null | typeof OPENED {
    if (length < 0) return null;
    if (length === 0) return [];
    this.frames.push({ items: new Array(length), filled: 0 });
    return OPENED;
  }
}

/** The decimal integer in `buffer[from, end)` (Redis's are 64-bit; as with ioredis, beyond 2^53 they lose digits). */
function integer(buffer: Buffer, from: number, end: number): number {
  const negative = buffer[from] === 0x2d;
  let value = 0;
  for (let i = negative ? from + 1 : from; i < end; i++) value = value * 10 + ((buffer[i] ?? 48) - 48);
  return negative ? -value : value;
}
