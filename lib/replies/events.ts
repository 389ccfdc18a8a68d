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

/** A cheap upper bound of an event's recorded size (its JSON, roughly), for the per-reply and cache caps. */
export function eventBytes(event: ReplyEvent): number {
  if (event.type === 'delta' && typeof event.delta === 'string') return 2 * event.delta.length + 32;
  return 2 * JSON.stringify(event).length;
}
