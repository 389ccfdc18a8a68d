import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

/** The traces' sink, for the server's shutdown: it sends what is still batched. */
export interface Tracing {
  shutdown(): Promise<void>;
}

/**
 * Turns the proxy's spans on (lib/observe/) and sends them in batches to an OTLP/HTTP collector: the Node server's
 * counterpart of `@vercel/otel` on Vercel. Server-only: the edge function never imports it. The endpoint is the
 * collector's base (`OTEL_EXPORTER_OTLP_ENDPOINT`), so traces go to its `/v1/traces` as the OTLP spec has it;
 * `OTEL_EXPORTER_OTLP_HEADERS` (an API key for a hosted backend) is read by the exporter itself.
 */
export function startTracing(endpoint: string): Tracing {
  const provider = new NodeTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': 'ai-chat-proxy' })),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))],
  });
  // Also installs the W3C `traceparent` propagator, so a caller's trace continues into ours.
  provider.register();
  return { shutdown: () => provider.shutdown() };
}
