import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Behaviour,
  demoReply,
  type ScriptedUsage,
  splitTokens,
  thirds,
  toolResultReply,
} from './behaviours';
import { type CapacityOptions, type CapacityStats, createCapacity } from './capacity';
import { readText, sendJson } from './http';
import { createFakeModeration, type FakeModeration } from './moderation';
import { type ReasoningOptions, refusal, thoughts } from './reasoning';

export { type Behaviour, faults, type ScriptedUsage } from './behaviours';
export { type CapacityOptions, openAiDuration, type ScriptedRateLimit } from './capacity';

/** Capacity (`maxConcurrent`, `requestsPerWindow`, `rateLimitHeaders`): off unless set, see fake-upstream/capacity.ts. */
export interface FakeUpstreamOptions extends CapacityOptions {
  /** Delay before the first token, in ms. Default 0. */
  readonly firstTokenDelayMs?: number;
  /** Delay between tokens, in ms. Default 0 (each token is still its own SSE event and its own write). */
  readonly tokenDelayMs?: number;
  /** If set, a request whose bearer token differs gets a 401, like a real provider. */
  readonly apiKey?: string;
  /** What a plain `reply` says. Default: the demo's canned preface and an echo of the last user message. */
  readonly reply?: (lastUserText: string) => string;
  readonly host?: string;
  readonly port?: number;
  /** Models that reason: they stream their thinking first, report `reasoning_tokens`, and may refuse parameters. */
  readonly reasoning?: ReasoningOptions;
  /**
   * The demo's unscripted tool calls: when the request declares tools and the last message is the user's, the fake
   * calls the first declared tool whose name appears in that message (case-insensitive), with `{}` as arguments.
   * Scripted behaviours still come first; the tool's answer gets the usual "The tool answered: …" reply.
   */
  readonly demoTools?: boolean;
}

/** What the fake saw of one request: enough to assert "called once" and "aborted within 100 ms". */
export interface FakeCall {
  readonly body: ChatBody;
  readonly authorization: string | undefined;
  readonly startedAt: number;
  tokensSent: number;
  /** Reasoning deltas streamed before the answer (reasoning models only). */
  reasoningSent: number;
  endedAt: number | undefined;
  aborted: boolean;
  abortedAt: number | undefined;
  /** Settles when the response has ended or the client went away. */
  readonly settled: Promise<void>;
}

interface ChatBody {
  model?: string;
  messages?: { role: string; content: unknown }[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  tools?: { type?: string; function?: { name?: unknown } }[];
  [key: string]: unknown;
}

export interface FakeUpstream extends CapacityStats {
  /** Base URL for an OpenAI client, e.g. `http://127.0.0.1:41234/v1`. */
  readonly url: string;
  readonly calls: readonly FakeCall[];
  /** `POST /v1/moderations`: its calls, and a switch to make it fail (fake-upstream/moderation.ts). */
  readonly moderation: FakeModeration;
  /** Queues behaviours for the next calls, in order; once the queue is empty every call gets a normal reply. */
  script(...behaviours: Behaviour[]): void;
  /** Replaces the capacity options given at start, until `reset()` restores those (fake-upstream/capacity.ts). */
  setCapacity(capacity: CapacityOptions): void;
  /** Also clears the capacity counters (`inFlight`, `peakInFlight`, `rejected`) and restores the start's capacity. */
  reset(): void;
  close(): Promise<void>;
}

/** An OpenAI-compatible `/v1/chat/completions` on loopback that speaks real HTTP and real SSE. */
export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const calls: FakeCall[] = [];
  let queue: Behaviour[] = [];
  const moderation = createFakeModeration(options.apiKey);
  const capacity = createCapacity(options);
  const server = createServer((req, res) => {
    // Routed before a scripted behaviour is taken: those are meant for the chat calls.
    if (moderation.route(req, res)) return;
    // Likewise a request refused for capacity leaves the script to those that get through.
    if (!capacity.admit(req, res, options.apiKey)) return;
    handle(req, res, queue.shift(), options, calls).catch(() => res.destroy());
  });
  // Streams must not be cut by Node's default timeouts while a test holds them open on purpose.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) =>
    // The proxy's backlog (server/lifecycle.ts): Node's 511 drops handshakes when the bench opens 1,000 streams at once.
    server.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', backlog: 4_096 }, resolve),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/v1`,
    calls,
    moderation,
    script: (...behaviours) => {
      queue.push(...behaviours);
    },
    get inFlight() {
      return capacity.inFlight;
    },
    get peakInFlight() {
      return capacity.peakInFlight;
    },
    get rejected() {
      return capacity.rejected;
    },
    rejectedAt: capacity.rejectedAt,
    setCapacity: capacity.set,
    reset: () => {
      queue = [];
      calls.length = 0;
      moderation.reset();
      capacity.reset();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  scripted: Behaviour | undefined,
  options: FakeUpstreamOptions,
  calls: FakeCall[],
): Promise<void> {
  if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
    return sendJson(res, 404, {
      error: { message: `No route ${req.method} ${req.url}`, type: 'invalid_request_error' },
    });
  }
  const body = JSON.parse(await readText(req)) as ChatBody;
  let behaviour: Behaviour = scripted ??
    (options.demoTools ? demoToolCall(body) : undefined) ?? { kind: 'reply' };
  let settle = () => {};
  const call: FakeCall = {
    body,
    authorization: req.headers.authorization,
    startedAt: performance.now(),
    tokensSent: 0,
    reasoningSent: 0,
    endedAt: undefined,
    aborted: false,
    abortedAt: undefined,
    settled: new Promise<void>((resolve) => {
      settle = resolve;
    }),
  };
  calls.push(call);
  res.on('close', () => {
    if (!res.writableFinished) {
      call.aborted = true;
      call.abortedAt = performance.now();
    }
    call.endedAt = performance.now();
    settle();
  });

  if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
    // Real providers echo (part of) the key they were given: the proxy must never pass this text on.
    return sendJson(res, 401, {
      error: {
        message: `Incorrect API key provided: ${req.headers.authorization?.slice(7) ?? ''}.`,
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      },
    });
  }
  while (behaviour.kind === 'held') {
    await behaviour.until;
    if (res.destroyed) return;
    behaviour = behaviour.answer;
  }
  if (behaviour.kind === 'status') {
    return sendJson(res, behaviour.status, behaviour.body, behaviour.headers);
  }
  const reasons = options.reasoning?.models.test(body.model ?? '') ? options.reasoning : undefined;
  const refused = reasons?.strict ? refusal(body) : undefined;
  if (refused) return sendJson(res, refused.status, refused.body);
  await streamReply(res, body, behaviour, options, call, reasons);
}

async function streamReply(
  res: ServerResponse,
  body: ChatBody,
  behaviour: Exclude<Behaviour, { kind: 'status' | 'held' }>,
  options: FakeUpstreamOptions,
  call: FakeCall,
  reasons: ReasoningOptions | undefined,
): Promise<void> {
  const model = body.model ?? 'fake-model';
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: object, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const gone = () => res.destroyed || call.aborted;

  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.flushHeaders();
  const firstDelay =
    behaviour.kind === 'slow-first-token' ? behaviour.delayMs : (options.firstTokenDelayMs ?? 0);
  if (firstDelay > 0) await sleep(firstDelay);
  if (gone()) return;
  if (behaviour.kind === 'whole') res.cork(); // uncorked by `res.end` below: every event in one write
  res.write(chunk({ role: 'assistant', content: '' }));
  if (reasons) {
    for (const thought of thoughts(lastUserText(body))) {
      if (call.reasoningSent > 0 && (options.tokenDelayMs ?? 0) > 0) await sleep(options.tokenDelayMs ?? 0);
      if (gone()) return;
      res.write(chunk({ [reasons.field]: thought }));
      call.reasoningSent++;
    }
  }

  const text = behaviour.kind === 'reasoning-only' ? '' : replyText(body, behaviour, options);
  const tokens = splitTokens(text);
  const stopAfter =
    'afterTokens' in behaviour && behaviour.kind !== 'pause' ? behaviour.afterTokens : tokens.length;
  const tokenDelayMs = behaviour.kind === 'paced' ? behaviour.tokenDelayMs : (options.tokenDelayMs ?? 0);
  for (const token of tokens.slice(0, stopAfter)) {
    if (call.tokensSent > 0 && tokenDelayMs > 0) await sleep(tokenDelayMs);
    if (behaviour.kind === 'pause' && call.tokensSent === behaviour.afterTokens) await behaviour.until;
    if (gone()) return;
    res.write(chunk({ content: token }));
    call.tokensSent++;
  }
  switch (behaviour.kind) {
    case 'tool-call':
      await streamToolCall(behaviour, (delta) => res.write(chunk(delta)));
      call.tokensSent += thirds(behaviour.arguments).length;
      break;
    case 'stall':
      return; // Hold the connection open and silent until the client gives up.
    case 'cut':
      // Let the tokens already written reach the client first, as they would from a real server that then dies.
      await new Promise<void>((resolve) => res.write('', () => resolve()));
      await sleep(10);
      res.destroy();
      return;
    case 'malformed':
      res.end('data: {"choices": [ this is not json\n\n');
      return;
  }
  const finish = behaviour.kind === 'tool-call' ? 'tool_calls' : 'stop';
  res.write(chunk({}, ('finishReason' in behaviour && behaviour.finishReason) || finish));
  if (body.stream_options?.include_usage) {
    const scripted = behaviour.kind === 'reply' ? behaviour.usage : undefined;
    const usage = usageOf(body, call, reasons !== undefined, scripted);
    res.write(
      `data: ${JSON.stringify({ id: 'chatcmpl-fake', object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
    );
  }
  if (behaviour.kind === 'whole' && behaviour.openAfterDone) {
    res.write('data: [DONE]\n\n');
    res.uncork();
    return;
  }
  res.end('data: [DONE]\n\n');
}

/** The usage chunk's counts, as OpenAI reports them: cached and reasoning tokens are parts of the totals. */
function usageOf(body: ChatBody, call: FakeCall, reasons: boolean, scripted: ScriptedUsage | undefined) {
  const promptTokens = scripted?.promptTokens ?? Math.ceil(JSON.stringify(body.messages ?? []).length / 4);
  const completion = scripted?.completionTokens ?? call.tokensSent + call.reasoningSent;
  const reasoning = scripted?.reasoningTokens ?? (reasons ? call.reasoningSent : undefined);
  const cached = scripted?.cachedTokens;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    ...(cached !== undefined && { prompt_tokens_details: { cached_tokens: cached } }),
    ...(reasoning !== undefined && { completion_tokens_details: { reasoning_tokens: reasoning } }),
  };
}

/** As OpenAI streams a call: the id and the name in the first fragment, then the arguments in pieces. */
async function streamToolCall(
  behaviour: Extract<Behaviour, { kind: 'tool-call' }>,
  write: (delta: object) => void,
): Promise<void> {
  const id = behaviour.id ?? `call_${Math.random().toString(36).slice(2, 10)}`;
  write({
    tool_calls: [{ index: 0, id, type: 'function', function: { name: behaviour.name, arguments: '' } }],
  });
  for (const piece of thirds(behaviour.arguments)) {
    await sleep(0);
    write({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
  }
}

function replyText(body: ChatBody, behaviour: Behaviour, options: FakeUpstreamOptions): string {
  if ('text' in behaviour && behaviour.text !== undefined) return behaviour.text;
  if (behaviour.kind === 'tool-call') return '';
  const last = body.messages?.at(-1);
  if (last?.role === 'tool') return toolResultReply(String(last.content));
  if (behaviour.kind === 'long')
    return Array.from({ length: behaviour.tokens }, (_, i) => `word${i} `).join('');
  return (options.reply ?? demoReply)(lastUserText(body));
}

/** Demo mode: a call to the first declared tool the user's last message names, if the last message is the user's. */
function demoToolCall(body: ChatBody): Behaviour | undefined {
  if (body.messages?.at(-1)?.role !== 'user' || !Array.isArray(body.tools)) return undefined;
  const said = lastUserText(body).toLowerCase();
  const name = body.tools
    .map((tool) => tool.function?.name)
    .find((name): name is string => typeof name === 'string' && said.includes(name.toLowerCase()));
  return name === undefined ? undefined : { kind: 'tool-call', name, arguments: '{}' };
}

function lastUserText(body: ChatBody): string {
  const lastUser = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  const content = lastUser?.content;
  if (typeof content === 'string') return content;
  // A message with attachments carries OpenAI content parts: echo its text parts.
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) =>
      typeof part === 'object' && part !== null && 'text' in part && typeof part.text === 'string'
        ? part.text
        : '',
    )
    .join('');
}
