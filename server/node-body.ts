import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BodyReader } from '../lib/http/read-body';

/** The Node request and response srvx's Node adapter keeps on a request (`req.runtime.node`); none for any other. */
export function srvxNode(req: Request): { req?: IncomingMessage; res?: ServerResponse } | undefined {
  return (req as { runtime?: { node?: { req?: IncomingMessage; res?: ServerResponse } } }).runtime?.node;
}

/**
 * A request's body read straight from Node's request stream (srvx keeps it on `req.runtime.node.req`), instead of
 * through the Web `ReadableStream` srvx builds over it (`Readable.toWeb`): a small JSON body is usually all buffered
 * by the time the handler reads it, and is then taken at once, where the web stream needed several event-loop turns.
 * Undefined for a request that did not come through srvx's Node adapter.
 */
export function nodeBodyReader(req: Request): BodyReader | undefined {
  const incoming = srvxNode(req)?.req;
  if (!incoming || req.method === 'GET' || req.method === 'HEAD') return undefined;
  // Something already read it, or holds it elsewhere (srvx's web stream, a framework's `rawBody`): leave it to them.
  if ('rawBody' in incoming || incoming.readableDidRead || incoming.readableFlowing !== null)
    return undefined;
  let stopWaiting: (() => void) | undefined;
  let cancelled = false;
  const read = (): Promise<Uint8Array | undefined> => {
    if (cancelled) return Promise.resolve(undefined);
    const chunk: Buffer | null = incoming.read();
    if (chunk !== null) return Promise.resolve(chunk);
    if (incoming.readableEnded || (incoming.complete && incoming.readableLength === 0)) {
      return Promise.resolve(undefined);
    }
    if (incoming.destroyed) return Promise.reject(incoming.errored ?? new Error('request stream closed'));
    return new Promise((resolve, reject) => {
      const settle = (next: () => void) => () => {
        stopWaiting = undefined;
        incoming.off('readable', onReadable);
        incoming.off('end', onEnd);
        incoming.off('error', onError);
        incoming.off('close', onClose);
        next();
      };
      const onReadable = settle(() => resolve(read()));
      const onEnd = settle(() => resolve(undefined));
      const onError = settle(() => reject(incoming.errored ?? new Error('request stream failed')));
      const onClose = settle(() =>
        incoming.complete ? resolve(read()) : reject(new Error('request stream closed')),
      );
      stopWaiting = settle(() => resolve(undefined));
      incoming.on('readable', onReadable);
      incoming.on('end', onEnd);
      incoming.on('error', onError);
      incoming.on('close', onClose);
    });
  };
  return {
    read,
    // As the web stream's cancel did: a pending read ends, and the rest of the upload is left unread (the answer
    // then closes the connection).
    cancel: () => {
      cancelled = true;
      incoming.pause();
      stopWaiting?.();
    },
  };
}
