/**
 * RESP2, the Redis wire protocol, both ways: commands out (arrays of bulk strings) and answers in, read from a byte
 * stream that may split an answer anywhere (in a multi-byte character too: answers are cut by bytes, decoded after).
 */

export type RespArg = string | number | Buffer;

/** An error answer (`-ERR …`), named as ioredis names it, so callers tell it from a lost connection. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
}

/** A command as Redis reads it: a string when every argument is text (the usual case, one template), else bytes. */
export function encodeCommand(args: readonly RespArg[]): string | Buffer {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    if (typeof arg === 'string') out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
    else if (typeof arg === 'number') {
      const text = String(arg);
      out += `$${text.length}\r\n${text}\r\n`;
    } else return encodeBytes(args);
  }
  return out;
}

function encodeBytes(args: readonly RespArg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');
const CR = 13;

/** What `next` answers while the buffered bytes do not hold a whole answer yet. */
export const INCOMPLETE = Symbol('incomplete');

/**
 * Answers as ioredis gives them by default: integers as numbers, bulk strings as text (null when absent), arrays (null
 * when absent), an error as a `ReplyError` (inside an array too: EXEC's answer holds one per failed command).
 */
export class RespReader {
  private buffer: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** The buffer must hold this many bytes before the next answer is worth reading again (a long bulk string). */
  private needed = 0;

  push(chunk: Buffer): void {
    if (this.pos >= this.buffer.length) this.buffer = chunk;
    else this.buffer = Buffer.concat([this.buffer.subarray(this.pos), chunk]);
    this.needed = Math.max(0, this.needed - this.pos);
    this.pos = 0;
  }

  /** The next whole answer, or `INCOMPLETE`. Throws on bytes that are not RESP2 (the connection is then unusable). */
  next(): unknown {
    if (this.buffer.length < this.needed || this.pos >= this.buffer.length) return INCOMPLETE;
    const start = this.pos;
    const value = this.read();
    if (value === INCOMPLETE) this.pos = start;
    else this.needed = 0;
    return value;
  }

  reset(): void {
    this.buffer = Buffer.alloc(0);
    this.pos = 0;
    this.needed = 0;
  }

  private read(): unknown {
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
        return this.array(integer(buffer, from, end));
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

  private array(length: number): unknown[] | null | typeof INCOMPLETE {
    if (length < 0) return null;
    const items: unknown[] = new Array(length);
    for (let i = 0; i < length; i++) {
      const item = this.read();
      if (item === INCOMPLETE) return INCOMPLETE;
      items[i] = item;
    }
    return items;
  }
}

/** The decimal integer in `buffer[from, end)` (Redis's are 64-bit; as with ioredis, beyond 2^53 they lose digits). */
function integer(buffer: Buffer, from: number, end: number): number {
  const negative = buffer[from] === 0x2d;
  let value = 0;
  for (let i = negative ? from + 1 : from; i < end; i++) value = value * 10 + ((buffer[i] ?? 48) - 48);
  return negative ? -value : value;
}
