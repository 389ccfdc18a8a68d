import type { Config } from '../config';
import type { Internal } from '../internal';
import { createFailover, type Route, type Upstream } from './failover';
import { createUpstreamTarget } from './target';

/**
 * The upstream the handler talks to: the main API, then `FALLBACK_MODELS` in order, with the retry policy and
 * timeouts from the config. Clients are built once here, at module scope.
 */
export function createUpstream(config: Config, internal: Internal): Upstream {
  const shared = {
    systemPrompt: config.systemPrompt,
    models: config.models,
    tools: config.tools.declared,
    startDeadlineMs: config.failover.policy.startDeadlineMs,
  };
  const main = createUpstreamTarget({
    provider: 'main',
    apiKey: config.apiKey,
    baseURL: config.baseURL,
    ...shared,
  });
  const providers = new Map(
    Object.entries(config.failover.providers).map(([name, p]) => [
      name,
      createUpstreamTarget({ provider: name.toLowerCase(), ...p, ...shared }),
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
