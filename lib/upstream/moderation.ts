import { APIError } from 'openai/error';
import type { ModerationCreateResponse } from 'openai/resources/moderations';
import type { Config } from '../config';
import { briefOutage, ProxyError } from '../errors';
import type { RequestLog } from '../log';
import { textOf } from '../parts/content';
import { redact } from '../redact';
import type { ChatRequest } from '../types';
import { linkedAbort } from './abort';
import { abortError } from './errors';
import { postJson, type Transport } from './openai-http';

/** What the moderation endpoint said about one text, or why it could not say. */
export type ModerationVerdict =
  | { readonly kind: 'checked'; readonly flagged: boolean; readonly categories: readonly string[] }
  | { readonly kind: 'unavailable'; readonly detail: string };

/** Checks one text. Rejects only when `signal` aborts (the client left); every endpoint failure is a verdict. */
export type Moderator = (text: string, signal: AbortSignal) => Promise<ModerationVerdict>;

/** The moderation endpoint of the main upstream. */
export function createModerator(
  config: Pick<Config, 'apiKey' | 'baseURL' | 'moderation' | 'secrets'>,
  transport?: Transport,
): Moderator {
  const { model, timeoutMs } = config.moderation;
  const endpoint = { baseURL: config.baseURL, apiKey: config.apiKey, transport };
  return async (text, signal) => {
    // Its own timeout: this call must be short, whatever the chat's deadlines.
    const call = linkedAbort(signal, { ms: timeoutMs, kind: 'moderation' });
    try {
      const body = { model, input: text };
      return verdictOf(await postJson<ModerationCreateResponse>(endpoint, '/moderations', body, call.signal));
    } catch (error) {
      if (signal.aborted) throw abortError(signal);
      const timedOut = call.signal.aborted;
      const detail = redact(
        `moderation endpoint failed: ${describe(error, timedOut, timeoutMs)}`,
        config.secrets,
      );
      return { kind: 'unavailable', detail };
    } finally {
      call.dispose();
    }
  };
}

function verdictOf(response: ModerationCreateResponse): ModerationVerdict {
  const results = response.results ?? [];
  if (results.length === 0) return { kind: 'unavailable', detail: 'moderation endpoint answered no result' };
  const categories = new Set<string>();
  for (const result of results) {
    for (const [category, flagged] of Object.entries(result.categories ?? {})) {
      if (flagged === true) categories.add(category);
    }
  }
  return { kind: 'checked', flagged: results.some((r) => r.flagged), categories: [...categories] };
}

function describe(error: unknown, timedOut: boolean, timeoutMs: number): string {
  if (timedOut) return `no answer within ${timeoutMs} ms`;
  if (error instanceof APIError) return `${error.status ?? 'no status'} ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** What the moderation step adds to the log line, and the answer when the request must stop here. */
export interface ModerationOutcome {
  readonly log: Pick<RequestLog, 'moderation' | 'moderation_categories' | 'moderation_error'>;
  readonly refusal?: ProxyError;
}

export type ModerationStep = (request: ChatRequest, signal: AbortSignal) => Promise<ModerationOutcome>;

const NOT_CHECKED: ModerationOutcome = { log: {} };

/**
 * `MODERATION=input`: the last user message is checked before the upstream sees it (earlier turns were checked when
 * they were sent). A flagged message is refused with 400 `content_flagged`; an endpoint that fails lets the message
 * through or answers 503, as `MODERATION_FAIL` says. The handler runs this after admitting the caller, so moderation
 * calls are rate-limited too, and a refusal gives the whole token reservation back.
 */
export function createModerationStep(config: Config, transport?: Transport): ModerationStep {
  if (config.moderation.mode === 'off') return async () => NOT_CHECKED;
  const moderate = createModerator(config, transport);
  const { failMode } = config.moderation;
  return async (request, signal) => {
    // Only the text is moderated: an attachment-only message has none to check (images are not sent to moderation).
    const last = request.messages.findLast((m) => m.role === 'user');
    const text = last ? textOf(last) : '';
    if (!text.trim()) return NOT_CHECKED;
    const verdict = await moderate(text, signal);
    if (verdict.kind === 'unavailable') {
      if (failMode === 'open')
        return { log: { moderation: 'unavailable', moderation_error: verdict.detail } };
      return { log: { moderation: 'unavailable' }, refusal: moderationUnavailable(verdict.detail) };
    }
    if (!verdict.flagged) return { log: { moderation: 'passed' } };
    const { categories } = verdict;
    return {
      log: { moderation: 'flagged', moderation_categories: categories },
      refusal: new ProxyError(
        400,
        'content_flagged',
        "This message can't be sent because it may break the content rules. Please rephrase it.",
        { detail: `flagged by moderation: ${categories.join(', ') || 'no category named'}` },
      ),
    };
  };
}

function moderationUnavailable(detail: string): ProxyError {
  return briefOutage(
    'moderation_unavailable',
    "Your message can't be checked right now. Please try again in a moment.",
    detail,
  );
}
