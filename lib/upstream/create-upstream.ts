import type { Config } from '../config';
import type { Internal } from '../internal';
import { tracedTarget } from '../observe/traced-upstream';
import { queuedTarget } from '../queue/queued-target';
import type { UpstreamQueue } from '../queue/upstream-queue';
import type { HeaderLookup } from '../types';
import { createFailover, type Route, type Upstream } from './failover';
import type { Transport } from './openai-http';
import { createUpstreamTarget, type UpstreamTarget } from './target';

/**
 * The upstream the handler talks to: the main API, then `FALLBACK_MODELS` in order, with the retry policy and
 * timeouts from the config. Clients are built once here, at module scope.
 */
export function createUpstream(
  config: Config,
  internal: Internal,
  queue?: UpstreamQueue,
  transport?: Transport,
): Upstream {
  const shared = {
    systemPrompt: config.systemPrompt,
    models: config.models,
    tools: config.tools.declared,
    startDeadlineMs: config.failover.policy.startDeadlineMs,
    transport,
  };
  // Each provider's capacity (`UPSTREAM_MAX_CONCURRENT`, `UPSTREAM_RPM`) is waited for before its attempt; each
  // attempt is a span when tracing records (the wait in line included).
  const queued = (target: UpstreamTarget) => tracedTarget(queue ? queuedTarget(target, queue) : target);
  const learn = (provider: string) =>
    queue && {
      onHeaders: (model: string, status: number | undefined, headers: HeaderLookup | undefined) =>
        queue.learn(provider, model, status, headers),
    };
  const main = queued(
    createUpstreamTarget({
      provider: 'main',
      apiKey: config.apiKey,
      baseURL: config.baseURL,
      ...shared,
      ...learn('main'),
    }),
  );
  const providers = new Map(
    Object.entries(config.failover.providers).map(([name, p]) => [
      name,
      queued(
        createUpstreamTarget({ provider: name.toLowerCase(), ...p, ...shared, ...learn(name.toLowerCase()) }),
      ),
    ]),
  );
  const fallbacks: Route[] = config.failover.fallbacks.map((f) => ({
    model: f.model,
    target: (f.provider && providers.get(f.provider)) || main,
  }));
  return createFailover({
    routes: (model) => [
      { model, target: main },
      ...fallbacks.filter((r) => !(r.model === model && r.target === main)),
    ],
    policy: config.failover.policy,
    fallbackMessage: config.failover.fallbackMessage,
    internal,
  });
}
