import type { Config } from '../lib/config';
import type { ChatProxy } from '../lib/create-proxy';
import type { Logger } from '../lib/log';
import { createProxyMetrics, type ProxyMetrics } from './metrics';
import { withMetrics } from './metrics-route';
import type { ServerConfig } from './server-config';
import { batchedStdoutLogger } from './stdout-log';
import { startTracing, type Tracing } from './tracing';

type Fetch = (req: Request) => Promise<Response>;

/** The Node server's metrics and traces, each on only when its variable is set. */
export interface Observability {
  /** The request logger: the JSON log line, counted into the metrics first when they are on. */
  readonly log: Logger;
  /** The routes, with `GET /metrics` in front when `METRICS_TOKEN` is set, reading `proxy`'s gauges. */
  routes(proxy: ChatProxy, next: Fetch): Fetch;
  /** `proxy`, whose `close` also sends the traces still batched. */
  closing(proxy: ChatProxy): ChatProxy;
  /** What the startup output says about them (nothing when both are off). */
  describe(url: string): string[];
}

export function startObservability(server: ServerConfig, config: Config): Observability {
  const tracing: Tracing | undefined = server.otlpEndpoint ? startTracing(server.otlpEndpoint) : undefined;
  const token = server.metricsToken;
  const metrics: ProxyMetrics | undefined =
    token === undefined
      ? undefined
      : createProxyMetrics({
          // The only values a `model` label may take: what clients may ask for, and what may answer instead.
          models: [...config.allowedModels, ...config.failover.fallbacks.map((f) => f.model)],
        });
  const lines = batchedStdoutLogger();
  return {
    log: metrics ? metrics.logger(lines) : lines,
    routes(proxy, next) {
      if (!metrics || token === undefined) return next;
      metrics.watch(() => proxy.readings());
      return withMetrics(metrics.registry, token, next);
    },
    closing: (proxy) =>
      tracing
        ? {
            ...proxy,
            close: async () => {
              await proxy.close();
              await tracing.shutdown().catch(() => {});
            },
          }
        : proxy,
    describe: (url) => [
      ...(metrics ? [`Metrics at ${new URL('/metrics', url)} (Authorization: Bearer $METRICS_TOKEN).`] : []),
      ...(server.otlpEndpoint ? [`Traces go to ${server.otlpEndpoint}/v1/traces (OTLP/HTTP).`] : []),
    ],
  };
}
