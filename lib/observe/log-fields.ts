import type { RequestLog } from '../log';

/** Numeric log fields that other parts of the proxy add when they have them; read here without depending on them. */
export type OptionalNumberField = 'cost_usd' | 'queue_wait_ms';

/** The field's value when the line has it as a number (cost, queue wait); `undefined` otherwise. */
export function loggedNumber(line: RequestLog, field: OptionalNumberField): number | undefined {
  const value: unknown = (line as unknown as Partial<Record<OptionalNumberField, unknown>>)[field];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
