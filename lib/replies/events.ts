import { ProxyError, type ProxyErrorOptions } from '../errors';
import type { Delta, Usage } from '../types';
import type { Served } from '../upstream/failover';

/** What every reader of a reply needs before its first token: who answered it, and the message id it was framed for. */
export interface ReplyHead {
  readonly served: Served;
  readonly adapted?: readonly string[];
  /** The leader's message id: a resumed stream replays under it, so the app continues the same message. */
  readonly messageId: string;
}

/** An error as the leader met it, enough to give every reader the same status, code and message. */
export interface RecordedError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly type: NonNullable<ProxyErrorOptions['type']>;
  readonly headers: Readonly<Record<string, string>>;
  /** Internal, for the log lines of the leader and its followers: never sent to a client. */
  readonly detail?: string;
  /** The leader's upstream attempts, for the log lines' `attempts`. */
  readonly attempts?: number;
}

/**
 * One entry of a recorded reply. A reply is `head, delta*, end` or `head?, delta*, error`: an error before the head
 * is a failure before the first token, which every reader answers with its status. `at` is the delta's offset from
 * the head in ms, for a paced replay.
 */
export type ReplyEvent =
  | { readonly type: 'head'; readonly head: ReplyHead }
  | { readonly type: 'delta'; readonly delta: Delta; readonly at: number }
  | { readonly type: 'end'; readonly finishReason?: string; readonly usage?: Usage }
  | { readonly type: 'error'; readonly error: RecordedError };

export const isFinal = (event: ReplyEvent): boolean => event.type === 'end' || event.type === 'error';

/** An error the reply log itself ends a reply with (no upstream said it), as an event every reader gets. */
export function failure(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
  detail?: string,
): ReplyEvent {
  const error: RecordedError = { status, code, message, type: 'server_error', headers };
  return { type: 'error', error: detail === undefined ? error : { ...error, detail } };
}

export function recordError(error: ProxyError): RecordedError {
  const { status, code, message, type, headers, detail, attempts } = error;
  return {
    status,
    code,
    message,
    type,
    headers,
    ...(detail !== undefined && { detail }),
    ...(attempts !== undefined && { attempts }),
  };
}

export function replayError(recorded: RecordedError): ProxyError {
  const { status, code, message, type, headers, detail, attempts } = recorded;
  return new ProxyError(status, code, message, { type, headers: { ...headers }, detail, attempts });
}

/**
 * A cheap upper bound of an event's recorded size (its JSON, roughly), for the per-reply and cache caps. The head and
 * the end, once a reply each, are bounded from their strings (their other fields are a few numbers and names) rather
 * than serialized: about 1 µs each on Node 20. Their strings are model and provider names and ids, which the config
 * and the ids keep to characters JSON writes as they are; a head read back in another shape is serialized.
 */
export function eventBytes(event: ReplyEvent): number {
  if (event.type === 'delta' && typeof event.delta === 'string') return 2 * event.delta.length + 32;
  if (event.type === 'head' && typeof event.head?.messageId === 'string' && event.head.served)
    return 2 * (160 + headChars(event.head));
  // Its usage is at most five numbers of 16 digits with their names.
  if (event.type === 'end') return 2 * (224 + (event.finishReason?.length ?? 0));
  return 2 * JSON.stringify(event).length;
}

function headChars({ served, messageId, adapted }: ReplyHead): number {
  let chars = messageId.length + (served.model?.length ?? 0) + (served.provider?.length ?? 0);
  for (const fix of adapted ?? []) chars += fix.length + 3;
  return chars;
}

/** The log line's detail of a reply whose leader vanished before its first token (see `isLeaderLost`). */
const LEADER_LOST_DETAIL = 'the leader vanished before its first token';

const interrupted = (detail?: string) =>
  failure(
    503,
    'reply_interrupted',
    'The reply was interrupted. Please send your message again.',
    { 'retry-after': '1' },
    detail,
  );

/** How a reply ends for its readers elsewhere when its writer is gone (its lease lapsed) or the log cannot be read. */
export const INTERRUPTED = interrupted();

/**
 * How a reply ends for its followers when its leader vanished before its first token: its lease lapsed (its process
 * died), or it gave the reply up (it was refused after claiming it). It is `INTERRUPTED` to whoever cannot take over.
 */
export const LEADER_LOST = interrupted(LEADER_LOST_DETAIL);

/**
 * A follower's reply ended with `LEADER_LOST`: nothing reached its client yet, so it may claim the key again and lead
 * (or follow whoever did) instead of failing. Whoever cannot (a resumed reader, a stream already started) answers it
 * as the `reply_interrupted` it is.
 */
export function isLeaderLost(error: unknown): boolean {
  return (
    error instanceof ProxyError && error.code === 'reply_interrupted' && error.detail === LEADER_LOST_DETAIL
  );
}
