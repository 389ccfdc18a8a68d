import { clientClosed, ProxyError } from '../errors';

const JSON_TYPE = /^application\/json\s*(;|$)/i;

export interface BodyLimits {
  /** Bytes, counted as they arrive. */
  readonly maxBodyBytes: number;
  /** The whole body must have arrived by then. */
  readonly bodyTimeoutMs: number;
}

/**
 * A request body read chunk by chunk. By default through the Web `ReadableStream` of `req.body`; a platform whose
 * requests come from somewhere cheaper to read can bring its own (`Platform.bodyReader`: the Node server reads the
 * socket's request stream without a web stream on top, which for a small JSON body took several event-loop turns).
 */
export interface BodyReader {
  /** The next chunk, or undefined at the end; rejects when the upload broke off. */
  read(): Promise<Uint8Array | undefined>;
  /** Stops reading (a deadline or the cap): the rest of the upload is never taken. */
  cancel(): void;
}

/** The platform's reader for a request, or undefined to read `req.body` as a Web stream. */
export type BodyReaderOf = (req: Request) => BodyReader | undefined;

/** The parsed body, and its size in bytes as it arrived (the validator holds its text to `MAX_BODY_BYTES`). */
export interface JsonBody {
  readonly body: unknown;
  readonly bytes: number;
}

/**
 * Checks the content type, then reads the body as JSON while counting bytes. The count is what arrives, not what
 * `Content-Length` claims, and reading stops at the cap so an oversized body costs us at most `maxBodyBytes`; a body
 * still arriving after `bodyTimeoutMs` is refused, so a trickled upload cannot hold a connection open for long.
 */
export async function readJsonBody(
  req: Request,
  limits: BodyLimits,
  readerOf?: BodyReaderOf,
): Promise<JsonBody> {
  const contentType = req.headers.get('content-type') ?? '';
  if (!JSON_TYPE.test(contentType)) {
    // Requiring JSON also means a cross-origin browser call cannot be a CORS "simple request": it gets preflighted.
    throw new ProxyError(
      415,
      'unsupported_media_type',
      "The body must be JSON. Send it with the header 'Content-Type: application/json' (curl: -H 'Content-Type: application/json').",
    );
  }
  const bytes = await readLimited(req, limits, readerOf);
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ProxyError(400, 'invalid_json', 'The body is not valid UTF-8 text.');
  }
  try {
    return { body: JSON.parse(text), bytes: bytes.byteLength };
  } catch {
    throw new ProxyError(400, 'invalid_json', 'The body is not valid JSON.');
  }
}

/** Decodes whole texts only (never `stream: true`), so one decoder serves every request. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The read deadline is a timer that cancels the reader (a pending read then ends at once), not a race: the upload
 * really stops, and the same code runs on the edge.
 */
async function readLimited(req: Request, limits: BodyLimits, readerOf?: BodyReaderOf): Promise<Uint8Array> {
  const reader = readerOf?.(req) ?? webReader(req);
  if (!reader) return new Uint8Array(0);
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    reader.cancel();
  }, limits.bodyTimeoutMs);
  try {
    return await readCapped(req, reader, limits.maxBodyBytes, () => late);
  } finally {
    clearTimeout(timer);
  }
}

function webReader(req: Request): BodyReader | undefined {
  const reader = req.body?.getReader();
  return (
    reader && {
      read: () => reader.read().then((next) => (next.done ? undefined : next.value)),
      cancel: () => {
        reader.cancel().catch(() => {});
      },
    }
  );
}

async function readCapped(
  req: Request,
  reader: BodyReader,
  maxBytes: number,
  late: () => boolean,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const value = await reader.read().catch(() => {
      if (late()) throw bodyTimeout();
      // The upload broke off: the client left (nobody to answer) or sent a broken stream (its fault, not ours).
      throw req.signal.aborted
        ? clientClosed()
        : new ProxyError(
            400,
            'body_unreadable',
            'The request body could not be read completely. Please send it again.',
          );
    });
    if (late()) throw bodyTimeout();
    if (value === undefined) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.cancel();
      throw bodyTooLarge(maxBytes, UNREAD_BODY);
    }
    chunks.push(value);
  }
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * The rest of the body was never read, so the connection cannot carry another request: say so, and the Node server
 * closes it after this answer instead of parsing leftover body bytes as the next request.
 */
const UNREAD_BODY = { connection: 'close' } as const;

/** A 413 naming the limit: the reader's, or (for a body whose text is over `MAX_BODY_BYTES`) the validator's. */
export function bodyTooLarge(maxBytes: number, headers?: Record<string, string>): ProxyError {
  return new ProxyError(
    413,
    'payload_too_large',
    `The request body is too large (limit: ${maxBytes} bytes).`,
    headers ? { headers } : {},
  );
}

function bodyTimeout(): ProxyError {
  return new ProxyError(
    408,
    'request_timeout',
    'The request body arrived too slowly. Please check your connection and send it again.',
    { headers: UNREAD_BODY },
  );
}
