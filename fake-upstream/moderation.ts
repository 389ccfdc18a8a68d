import type { IncomingMessage, ServerResponse } from 'node:http';
import { readText, sendJson } from './http';

/** Any input containing this is flagged, for `FLAGGED_FOR`; everything else is clean. */
export const FLAG_MARKER = 'FLAG-ME';
export const FLAGGED_FOR: readonly string[] = ['harassment', 'violence'];

/** Every category OpenAI's `omni-moderation` models report, so the answer has the real shape. */
const CATEGORIES = [
  'harassment',
  'harassment/threatening',
  'hate',
  'hate/threatening',
  'illicit',
  'illicit/violent',
  'self-harm',
  'self-harm/intent',
  'self-harm/instructions',
  'sexual',
  'sexual/minors',
  'violence',
  'violence/graphic',
] as const;

/** What the fake saw of one `POST /v1/moderations`. */
export interface ModerationCall {
  readonly model: string | undefined;
  readonly input: unknown;
  readonly authorization: string | undefined;
}

export interface FakeModeration {
  readonly calls: readonly ModerationCall[];
  /** Until the next reset, answer every moderation call with this HTTP status, or never answer (`hang`). */
  fail(how: number | 'hang'): void;
  reset(): void;
}

export interface FakeModerationEndpoint extends FakeModeration {
  /** Takes the request if it is a moderation call (and answers it); `false` leaves it to the chat route. */
  route(req: IncomingMessage, res: ServerResponse): boolean;
}

/** OpenAI's `POST /v1/moderations`, answered in its real response shape; checks the bearer key like the chat route. */
export function createFakeModeration(apiKey: string | undefined): FakeModerationEndpoint {
  const calls: ModerationCall[] = [];
  let failure: number | 'hang' | undefined;

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = JSON.parse(await readText(req)) as { model?: string; input?: unknown };
    calls.push({ model: body.model, input: body.input, authorization: req.headers.authorization });
    if (apiKey !== undefined && req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendJson(res, 401, {
        error: {
          message: 'Incorrect API key provided.',
          type: 'invalid_request_error',
          code: 'invalid_api_key',
        },
      });
    }
    if (failure === 'hang') return; // silent until the client gives up
    if (failure !== undefined) {
      return sendJson(res, failure, {
        error: { message: 'The moderation service is down.', type: 'server_error' },
      });
    }
    sendJson(res, 200, {
      id: `modr-fake-${calls.length}`,
      model: body.model ?? 'omni-moderation-latest',
      results: texts(body.input).map(moderate),
    });
  }

  return {
    calls,
    fail: (how) => {
      failure = how;
    },
    reset: () => {
      calls.length = 0;
      failure = undefined;
    },
    route(req, res) {
      if (req.method !== 'POST' || !req.url?.endsWith('/moderations')) return false;
      answer(req, res).catch(() => res.destroy());
      return true;
    },
  };
}

function moderate(text: string) {
  const flagged = text.includes(FLAG_MARKER);
  const hit = (category: string) => flagged && FLAGGED_FOR.includes(category);
  const each = <T>(value: (category: string) => T) =>
    Object.fromEntries(CATEGORIES.map((category) => [category, value(category)]));
  return {
    flagged,
    categories: each(hit),
    category_scores: each((category) => (hit(category) ? 0.97 : 0.0001)),
    category_applied_input_types: each(() => ['text']),
  };
}

/** `input` is a string, a list of strings, or a list of multi-modal parts (only text parts are read here). */
function texts(input: unknown): string[] {
  const list = Array.isArray(input) ? input : [input];
  return list.map((item) => {
    if (typeof item === 'string') return item;
    const part = item as { type?: unknown; text?: unknown } | null;
    return part?.type === 'text' && typeof part.text === 'string' ? part.text : '';
  });
}
