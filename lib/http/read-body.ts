import { clientClosed, ProxyError } from '../errors';

const JSON_TYPE = /^application\/json\s*(;|$)/i;

/**
 * Checks the content type, then reads the body as JSON while counting bytes. The count is what arrives, not what
 * `Content-Length` claims, and reading stops at the cap so an oversized body costs us at most `maxBytes`.
 */
export async function readJsonBody(req: Request, maxBytes: number): Promise<unknown> {
  const contentType = req.headers.get('content-type') ?? '';
  if (!JSON_TYPE.test(contentType)) {
    // Requiring JSON also means a cross-origin browser call cannot be a CORS "simple request": it gets preflighted.
    throw new ProxyError(
      415,
      'unsupported_media_type',
      "The body must be JSON. Send it with the header 'Content-Type: application/json' (curl: -H 'Content-Type: application/json').",
    );
  }
  const bytes = await readCapped(req, maxBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ProxyError(400, 'invalid_json', 'The body is not valid UTF-8 text.');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ProxyError(400, 'invalid_json', 'The body is not valid JSON.');
  }
}

async function readCapped(req: Request, maxBytes: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read().catch(() => {
      // The upload broke off: the client left (nobody to answer) or sent a broken stream (its fault, not ours).
      throw req.signal.aborted
        ? clientClosed()
        : new ProxyError(
            400,
            'body_unreadable',
            'The request body could not be read completely. Please send it again.',
          );
    });
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new ProxyError(
        413,
        'payload_too_large',
        `The request body is too large (limit: ${maxBytes} bytes).`,
      );
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
