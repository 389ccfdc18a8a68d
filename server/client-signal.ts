import { linkedAbort } from '../lib/upstream/abort';
import { srvxNode } from './node-body';

/**
 * A request's "the client left", as srvx's `req.signal` tells it (the response closed before it ended; with the
 * request's error, if it failed), on a signal of our own (lib/upstream/abort.ts) instead of the `AbortController`
 * srvx makes on first use, which Node 20 builds on a slow path and keeps through young-generation collections with
 * everything it points to. A request that did not come through srvx's Node adapter keeps its own `req.signal`.
 */
export function nodeClientSignal(req: Request): AbortSignal {
  const node = srvxNode(req);
  const incoming = node?.req;
  const res = node?.res;
  if (!incoming || !res) return req.signal;
  const left = linkedAbort(undefined);
  const onClose = () => {
    if (incoming.errored) left.abort(incoming.errored);
    else if (!res.writableEnded) left.abort();
  };
  // Gone already (srvx's `isClientGone`, or the response closed): at once.
  if (res.destroyed || incoming.aborted || incoming.errored || (incoming.destroyed && !incoming.complete))
    onClose();
  else res.once('close', onClose);
  return left.signal;
}
