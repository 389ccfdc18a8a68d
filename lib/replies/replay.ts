import { clientClosed, ProxyError } from '../errors';
import type { Delta } from '../types';
import type { ServedReply } from '../upstream/failover';
import { type ReplyEvent, type ReplyHead, replayError } from './events';
import type { ReplyReader } from './live-reply';

export interface Replayed {
  readonly reply: ServedReply;
  readonly head: ReplyHead;
}

/**
 * A reader's view of a recorded reply as the handler's `ServedReply`, once its first token is in: so a reader
 * answers with the leader's status, and streams through the very same framing as a reply fresh from the upstream.
 * `pace`: wait out each delta's recorded offset (a paced cache replay).
 */
export async function replayReply(reader: ReplyReader, pace = false): Promise<Replayed> {
  const head = await nextOrThrow(reader);
  if (head.type !== 'head') throw corrupt(head.type);
  // The leader records its head only after its first token: wait for that too, so a failure here still gets a status.
  const first = await nextOrThrow(reader);
  const outcome: ServedReply['outcome'] = { deltas: 0 };
  const startedAt = Date.now();
  async function* tokens(): AsyncGenerator<Delta> {
    let event: ReplyEvent | undefined = first;
    while (event) {
      if (event.type === 'end') {
        outcome.finishReason = event.finishReason;
        outcome.usage = event.usage;
        return;
      }
      if (event.type === 'error') throw replayError(event.error);
      if (event.type === 'delta') {
        if (pace) await sleepUntil(startedAt + event.at);
        outcome.deltas++;
        yield event.delta;
      }
      event = await reader.next();
    }
    // The reader left (its client is gone): what the reply stream expects of a cancelled upstream.
    throw clientClosed();
  }
  const { served, adapted } = head.head;
  // A paced replay waits before each delta: nothing is ever ready ahead of its time.
  const ready = pace ? {} : { ready: reader.ready };
  return {
    reply: { tokens: tokens(), outcome, served, ...ready, ...(adapted && { adapted }) },
    head: head.head,
  };
}

/** The next event; an error recorded before the first token is thrown with its status, as the leader met it. */
async function nextOrThrow(reader: ReplyReader): Promise<ReplyEvent> {
  const event = await reader.next();
  if (!event) throw clientClosed();
  if (event.type === 'error') throw replayError(event.error);
  return event;
}

function corrupt(type: string): ProxyError {
  return new ProxyError(502, 'reply_log_corrupt', 'The assistant could not answer. Please try again.', {
    detail: `reply log starts with ${type}, not head`,
  });
}

function sleepUntil(at: number): Promise<void> {
  const ms = at - Date.now();
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
