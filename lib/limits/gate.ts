import type { RateLimitConfig } from '../config/rate-limit';
import { briefOutage, type ProxyError } from '../errors';
import { InFlightMap } from '../in-flight';
import type { Internal } from '../internal';
import { redact } from '../redact';
import { oneAtATime, refusedCallers, sharedAsk } from './ask';
import { type Caller, type ClientIp, createCallerIdentifier } from './caller-identity';
import { memoryLimitStores } from './memory-store';
import { quotaHeaders, refusal, type Verdict } from './quota';
import { createStoreGuard, type StoreGuard } from './store-guard';
import type { Amount, BookedWindows, LimitStores } from './stores';

/** How the limiter decided: a log field, and (when the shared store was unavailable) a response header. */
export type LimitDecision = 'allowed' | 'fail_local' | 'fail_open';

/** A booking this request holds in one store: its reservations and its stream slot, to give back at the end. */
interface Held {
  readonly stores: LimitStores;
  readonly shared: boolean;
  readonly windows: BookedWindows;
}

export interface Admission {
  readonly caller: Caller;
  readonly decision: LimitDecision;
  /** Quota headers for the response: `X-RateLimit-*`, and the IETF `RateLimit` / `RateLimit-Policy`. */
  readonly headers: Readonly<Record<string, string>>;
  /** Why the shared store could not be asked, redacted, for the log line. */
  readonly detail?: string;
  /** The worst case reserved from the token budget. */
  readonly reserved: number;
  /** The worst case reserved from the spend budgets, in micro-dollars (0 when they are off). */
  readonly reservedMicros: number;
  readonly leaseId: string;
  readonly held: readonly Held[];
}

export interface RateLimitGate {
  /**
   * Identifies the caller, counts the request, and books the worst case it can cost from the token budget (and, in
   * micro-dollars, from the spend budgets) and a stream slot. A bare number is tokens alone. Throws a 403, 429 or
   * 503 ProxyError; when it refuses, it holds nothing (a booking sent with the count is given back).
   */
  admit(req: Request, verifiedCallerId: string | undefined, worstCase: number | Amount): Promise<Admission>;
  /**
   * The caller's id as `admit` will give it, for work sent alongside the admission (the reply log's claim); undefined
   * when the caller cannot be identified, or this instance refused it lately (until its `retry-after`): a flood of
   * refused requests then costs only their admissions.
   */
  ahead(req: Request, verifiedCallerId: string | undefined): string | undefined;
  /**
   * Ends an admitted request: settles the reservations to what was really used (never more than reserved) and frees
   * the stream slot. A bare number is tokens alone: with it, spend settles at its reservation unless the number is 0
   * (nothing was generated), so a caller that cannot say what a reply cost never makes it cheaper. Never rejects:
   * returns a detail for the log instead.
   */
  settle(admission: Admission, used: number | Amount): Promise<string | undefined>;
}

export interface GateOptions {
  readonly config: RateLimitConfig;
  readonly stores: LimitStores;
  readonly clientIp: ClientIp;
  /** Keeps background work (the limiter's `pending`) alive after the response on serverless platforms. */
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly secrets: readonly string[];
  readonly internal: Internal;
}

/**
 * The limits of one instance. The shared store decides; every booking it grants is mirrored in a local in-memory
 * store with the same limits, so that when the shared store is down the instance carries on from what it has
 * already counted (`RATE_LIMIT_FAIL=local`): the worst case of an outage is "limits per instance", never "none".
 */
export function createRateLimitGate(options: GateOptions): RateLimitGate {
  const { config, stores, internal, secrets } = options;
  const identify = createCallerIdentifier(config, options.clientIp);
  const local = stores.kind === 'memory' ? undefined : memoryLimitStores(config, internal.now);
  const guard = createStoreGuard({ timeoutMs: config.redisTimeoutMs, breakMs: 1_000, now: internal.now });
  const leases = createLeaseKeeper(config.streamLeaseMs, guard);
  const { shared, inMemory } = askers(options, guard, local !== undefined);
  const refusedLately = refusedCallers(internal.now);

  return {
    async admit(req, verifiedCallerId, worstCase) {
      const caller = identify(req, verifiedCallerId);
      const amount = typeof worstCase === 'number' ? { tokens: worstCase, micros: 0 } : worstCase;
      const leaseId = internal.newId();
      const held: Held[] = [];
      let verdict: Verdict;
      let detail: string | undefined;
      try {
        verdict = await guard.run(() => shared(stores, caller.id, amount, leaseId));
        if (verdict.booking?.booked) {
          held.push({ stores, shared: true, windows: verdict.booking.windows });
          // The local shadow books what the shared store granted, so an outage starts from this instance's count.
          if (local) hold(held, local, await inMemory(local, caller.id, amount, leaseId));
        }
      } catch (error) {
        detail = redact(`rate-limit store (${stores.kind}) unavailable: ${describe(error)}`, secrets);
        if (config.failMode === 'closed' || !local) throw storeDown(detail);
        if (config.failMode === 'open') return openAdmission(caller, leaseId, detail);
        verdict = await inMemory(local, caller.id, amount, leaseId);
        hold(held, local, verdict);
      }
      if (verdict.requests.pending) options.waitUntil(verdict.requests.pending.catch(() => {}));
      const decision: LimitDecision = detail === undefined ? 'allowed' : 'fail_local';
      const headers = Object.assign(quotaHeaders(config, verdict, internal.now()), failHeader(decision));
      const refused = refusal(verdict, headers, internal.now());
      if (refused) throw remembered(refused, caller, refusedLately, internal.now());
      const admission = {
        caller,
        decision,
        headers,
        reserved: amount.tokens,
        reservedMicros: amount.micros,
        leaseId,
        held,
        ...(detail && { detail }),
      };
      leases.keep(admission);
      return admission;
    },

    ahead: (req, verifiedCallerId) => callerAhead(identify, refusedLately, req, verifiedCallerId),

    async settle(admission, used) {
      leases.drop(admission);
      const spent = typeof used === 'number' ? tokensOnly(admission, used) : used;
      const delta = {
        tokens: Math.min(Math.max(0, spent.tokens), admission.reserved) - admission.reserved,
        micros: Math.min(Math.max(0, spent.micros), admission.reservedMicros) - admission.reservedMicros,
      };
      const failure = await finish(admission, delta, guard);
      return settleNote(failure, admission, spent, secrets);
    },
  };
}

/**
 * How the stores are asked: memory answers at once, so only a shared store is worth asking both questions in one
 * round trip. Giving back a booking nobody needed runs after the refusal is answered (its command is already on its
 * way, so the guard has nothing to decide; a failure only leaves the lease to lapse and the window to expire).
 */
function askers(options: GateOptions, guard: StoreGuard, sharedStore: boolean) {
  const asking = { maxStreams: options.config.maxStreamsPerCaller, answered: guard.answered };
  const inMemory = oneAtATime(asking);
  if (!sharedStore) return { shared: inMemory, inMemory };
  const shared = sharedAsk({ ...asking, now: options.internal.now, background: options.waitUntil });
  return { shared, inMemory };
}

/** What the log line says of a settlement: a failure to give back, or a use beyond what was reserved. */
function settleNote(
  failure: string | undefined,
  admission: Admission,
  spent: Amount,
  secrets: readonly string[],
): string | undefined {
  const excess = spent.tokens - admission.reserved;
  const excessMicros = spent.micros - admission.reservedMicros;
  const notes = [
    failure,
    excess > 0 ? `usage exceeded the reservation by ${excess} tokens` : undefined,
    excessMicros > 0 ? `cost exceeded the reservation by ${excessMicros} micro-USD` : undefined,
  ];
  const note = notes.filter(Boolean).join('; ');
  return note ? redact(note, secrets) : undefined;
}

/** A refusal, remembered until its `retry-after`: until then nothing is sent ahead of that caller's admissions. */
function remembered(
  refused: ProxyError,
  caller: Caller,
  refusedLately: ReturnType<typeof refusedCallers>,
  now: number,
): ProxyError {
  refusedLately.add(caller.id, now + 1000 * Number(refused.headers['retry-after'] ?? 1));
  return refused;
}

function callerAhead(
  identify: ReturnType<typeof createCallerIdentifier>,
  refusedLately: ReturnType<typeof refusedCallers>,
  req: Request,
  verifiedCallerId: string | undefined,
): string | undefined {
  try {
    const { id } = identify(req, verifiedCallerId);
    return refusedLately.has(id) ? undefined : id;
  } catch {
    return undefined; // `admit` refuses it, with its reason
  }
}

function hold(held: Held[], stores: LimitStores, verdict: Verdict): void {
  if (verdict.booking?.booked) held.push({ stores, shared: false, windows: verdict.booking.windows });
}

/** Tokens alone: spend settles at its reservation, unless nothing at all was used. */
function tokensOnly(admission: Admission, tokens: number): Amount {
  return { tokens, micros: tokens === 0 ? 0 : admission.reservedMicros };
}

/** Gives back what an admission holds: `delta` to each reservation, and its stream slots. */
async function finish(admission: Admission, delta: Amount, guard: StoreGuard): Promise<string | undefined> {
  const { caller, leaseId } = admission;
  const failures: string[] = [];
  for (const h of admission.held) {
    const work = async () =>
      guard.answered(await h.stores.ledger.finish(caller.id, h.windows, delta, leaseId));
    await (h.shared ? guard.run(work) : work()).catch((error: unknown) => {
      failures.push(`settling the limits failed: ${describe(error)}`);
    });
  }
  return failures[0];
}

/** Renews the stream slots of admitted requests while they stream, so only a crashed holder lets one expire. */
function createLeaseKeeper(leaseMs: number, guard: StoreGuard) {
  const timers = new InFlightMap<ReturnType<typeof setInterval>>();
  return {
    keep(admission: Admission) {
      if (admission.held.length === 0) return;
      const renew = () => {
        for (const h of admission.held) {
          const work = () => h.stores.ledger.renew(admission.caller.id, admission.leaseId);
          (h.shared ? guard.run(work) : work()).catch(() => {}); // a missed renewal is retried a third of a lease later
        }
      };
      timers.set(admission.leaseId, setInterval(renew, Math.max(1, Math.floor(leaseMs / 3))));
    },
    drop(admission: Admission) {
      clearInterval(timers.get(admission.leaseId));
      timers.delete(admission.leaseId);
    },
  };
}

function openAdmission(caller: Caller, leaseId: string, detail: string): Admission {
  return {
    caller,
    decision: 'fail_open',
    headers: failHeader('fail_open'),
    detail,
    reserved: 0,
    reservedMicros: 0,
    leaseId,
    held: [],
  };
}

function failHeader(decision: LimitDecision): Record<string, string> {
  if (decision === 'allowed') return {};
  return { 'x-ratelimit-fail': decision === 'fail_open' ? 'open' : 'local' };
}

function storeDown(detail: string) {
  return briefOutage(
    'rate_limiter_unavailable',
    'The service is busy right now. Please try again in a moment.',
    detail,
  );
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
