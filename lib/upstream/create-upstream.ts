import type { Config } from '../config';
import { createFailover, type Route, type Upstream } from './failover';
import { createUpstreamTarget } from './target';

/**
 * The upstream the handler talks to: the main API, then `FALLBACK_MODELS` in order, with the retry policy and
 * timeouts from the config. Clients are built once here, at module scope.
 */
export function upstreamFromConfig(
  config: Config,
  options: { fetch?: typeof fetch; apiKey?: string } = {},
): Upstream {
  const fetchOption = options.fetch ? { fetch: options.fetch } : {};
  const main = createUpstreamTarget({
    provider: 'main',
    apiKey: options.apiKey ?? config.apiKey,
    baseURL: config.baseURL,
    systemPrompt: config.systemPrompt,
    ...fetchOption,
  });
  const providers = new Map(
    Object.entries(config.failover.providers).map(([name, p]) => [
      name,
      createUpstreamTarget({
        provider: name.toLowerCase(),
        ...p,
        systemPrompt: config.systemPrompt,
        ...fetchOption,
      }),
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
  });
}
