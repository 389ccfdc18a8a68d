import type { Framing } from './reply-stream';

/** Plain text tokens, for `curl -N`. A failure after the first token becomes a clearly marked last line. */
export const textFraming: Framing = {
  start: () => '',
  delta: (text) => text,
  end: () => '',
  error: (message) => `\n\n[error] ${message}\n`,
};

export function textStreamResponse(
  stream: ReadableStream<Uint8Array>,
  headers: Record<string, string>,
): Response {
  return new Response(stream, {
    status: 200,
    headers: { ...headers, 'content-type': 'text/plain; charset=utf-8', 'x-accel-buffering': 'no' },
  });
}

/** Plain text only when asked for it; everything else (browsers, `useChat`) gets the UI message stream. */
export function wantsPlainText(req: Request): boolean {
  const accept = req.headers.get('accept') ?? '';
  return /\btext\/plain\b/i.test(accept) && !/\btext\/event-stream\b/i.test(accept);
}
