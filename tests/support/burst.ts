import type { ChatHandler } from '../../lib/chat-handler';

export interface BurstResult {
  /** Requests admitted (status 200) by each instance. */
  readonly admitted: number[];
  readonly statuses: Record<number, number>;
  /** `instance:code[:local]` → count, e.g. `1:rate_limited:local`. */
  readonly codes: Record<string, number>;
  /** Responses that said the shared store was unavailable (`x-ratelimit-fail`). */
  readonly failedOver: number;
}

export interface BurstOptions {
  /** One handler per instance; requests are spread over them in turn. */
  readonly instances: readonly ChatHandler[];
  readonly requests: number;
  readonly ip: string;
  /** Keep this process's event loop busy (40 ms of CPU every 50 ms) for the whole burst, like a loaded server. */
  readonly busy: boolean;
  /** Send the first `afterRequests` and wait for their answers, run `action` (stop Redis), then send the rest. */
  readonly midway?: { readonly afterRequests: number; readonly action: () => Promise<void> };
}

interface Answer {
  readonly instance: number;
  readonly status: number;
  readonly code: string;
  readonly failedOver: boolean;
}

/** Fires concurrent chat requests from one caller at the instances, and reads every answer to its end. */
export async function burst(options: BurstOptions): Promise<BurstResult> {
  const blocker = options.busy ? setInterval(() => spin(40), 50) : undefined;
  const first = options.midway?.afterRequests ?? options.requests;
  try {
    const answers = await send(options, 0, first);
    if (options.midway) {
      await options.midway.action();
      answers.push(...(await send(options, first, options.requests)));
    }
    return summarize(answers, options.instances.length);
  } finally {
    clearInterval(blocker);
  }
}

function send(options: BurstOptions, from: number, to: number): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: to - from }, async (_, k) => {
      const instance = (from + k) % options.instances.length;
      const res = await (options.instances[instance] as ChatHandler)(chatFrom(options.ip));
      const body = await res.text();
      const code = res.status === 200 ? 'ok' : (/"code":"(\w+)"/.exec(body)?.[1] ?? String(res.status));
      return { instance, code, status: res.status, failedOver: res.headers.has('x-ratelimit-fail') };
    }),
  );
}

function summarize(answers: Answer[], instances: number): BurstResult {
  const admitted = Array.from(
    { length: instances },
    (_, k) => answers.filter((a) => a.instance === k && a.status === 200).length,
  );
  const statuses: Record<number, number> = {};
  const codes: Record<string, number> = {};
  for (const a of answers) {
    statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    const key = `${a.instance}:${a.code}${a.failedOver ? ':local' : ''}`;
    codes[key] = (codes[key] ?? 0) + 1;
  }
  return { admitted, statuses, codes, failedOver: answers.filter((a) => a.failedOver).length };
}

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy: this is the point
  }
}

function chatFrom(ip: string): Request {
  return new Request('http://proxy.test/api/chat', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/plain', 'x-real-ip': ip },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }),
  });
}
