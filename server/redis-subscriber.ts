import { InFlightMap } from '../lib/in-flight';
import type { Subscribe } from '../lib/redis/connect';
import { RespConnection, type RespOptions } from './resp-connection';

/**
 * No command timeout: a SUBSCRIBE answered late (a busy machine) is no reason to drop the connection and subscribe to
 * everything again. A dead peer is found by TCP itself, slowly (keep-alive probes, or the retransmission limit while a
 * SUBSCRIBE is unanswered: minutes), and a peer that stays connected but never answers, not at all: meanwhile the
 * watchers poll, so that costs wake latency, not replies.
 */
type SubscriberOptions = Pick<RespOptions, 'connectTimeoutMs' | 'tls'>;

/** A (P)SUBSCRIBE: whether Redis listens (it answered since the connection was last ready). */
interface Subscription {
  readonly kind: 'SUBSCRIBE' | 'PSUBSCRIBE';
  readonly name: string;
  heard: boolean;
  /** A (P)SUBSCRIBE is out, unanswered: asking again would only repeat it. */
  asking: boolean;
}

/** A channel's watchers, and the subscription that hears it: its own SUBSCRIBE, or its pattern's PSUBSCRIBE. */
interface Channel {
  readonly watchers: Set<Watcher>;
  readonly subscription: Subscription;
}

interface Watcher {
  readonly wake: (message: string) => void;
  readonly listening: (() => void) | undefined;
}

/**
 * Pub/sub for the shared reply log's and the queue's watchers, on a RESP connection of its own (a subscribed
 * connection runs no other command), opened at the first watch and shared by every channel: SUBSCRIBE at a channel's
 * first watcher, UNSUBSCRIBE at its last; a channel that names a pattern is heard through that pattern, subscribed at
 * its first use and kept. Redis's answer to the (P)SUBSCRIBE says when it listens: watchers that asked are told then,
 * or at once if it already did. Each time the connection is ready again (after a drop) every subscription still wanted
 * is asked for again (one that Redis refused too), and its watchers are told again once it listens: a message
 * published in between was missed. A lost subscription only costs a wake: the watchers still poll, more slowly, and a
 * leader's calls reach it in its next write's answer.
 */
export function subscriber(url: string, options: SubscriberOptions): { subscribe: Subscribe; close(): void } {
  const subscriptions = new Subscriptions(url, options);
  return { subscribe: subscriptions.subscribe, close: () => subscriptions.close() };
}

class Subscriptions {
  private readonly channels = new InFlightMap<Channel>(); // by SUBSCRIBE
  private readonly routed = new InFlightMap<Channel>(); // by a pattern's PSUBSCRIBE
  private readonly patterns = new Map<string, Subscription>();
  private connection: RespConnection | undefined;

  constructor(
    private readonly url: string,
    private readonly options: SubscriberOptions,
  ) {}

  readonly subscribe: Subscribe = (name, onMessage, { pattern, onListening } = {}) => {
    const map = pattern ? this.routed : this.channels;
    let channel = map.get(name);
    if (!channel) {
      const subscription = pattern ? this.byPattern(pattern) : unheard('SUBSCRIBE', name);
      channel = { watchers: new Set(), subscription };
      map.set(name, channel);
    }
    // Each watch is its own entry, so the same callback watching twice is called twice and removed once per stop.
    const watcher: Watcher = { wake: onMessage, listening: onListening };
    const mine = channel;
    mine.watchers.add(watcher);
    const { subscription } = mine;
    // A new one is asked for; one Redis refused (ACL) is asked for again, as by the next connection: it may be allowed now.
    if (!subscription.heard) this.ask(subscription);
    if (onListening && subscription.heard)
      queueMicrotask(() => mine.watchers.has(watcher) && safely(onListening));
    return () => {
      if (!mine.watchers.delete(watcher) || mine.watchers.size > 0 || map.get(name) !== mine) return;
      map.delete(name);
      if (!pattern) this.connection?.call(['UNSUBSCRIBE', name]).catch(() => {});
    };
  };

  close(): void {
    this.channels.clear();
    this.routed.clear();
    this.patterns.clear();
    this.connection?.close();
    this.connection = undefined;
  }

  private open(): RespConnection {
    this.connection ??= new RespConnection(new URL(this.url), {
      ...this.options,
      onPush: (push) => {
        if (push[0] === 'message') wakeAll(this.channels, String(push[1]), String(push[2]));
        else wakeAll(this.routed, String(push[2]), String(push[3]));
      },
      onReady: () => this.askAgain(),
    });
    return this.connection;
  }

  private byPattern(pattern: string): Subscription {
    let made = this.patterns.get(pattern);
    if (!made) {
      made = unheard('PSUBSCRIBE', pattern);
      this.patterns.set(pattern, made);
    }
    return made;
  }

  private ask(subscription: Subscription): void {
    if (subscription.asking) return;
    subscription.asking = true;
    this.open()
      .call([subscription.kind, subscription.name])
      .then(
        () => {
          subscription.asking = false;
          this.heard(subscription);
        },
        () => {
          // Refused, or the connection dropped: asked again at the next watch, or when the next connection is ready.
          subscription.asking = false;
        },
      );
  }

  /** A new connection is ready: it listens to nothing yet. */
  private askAgain(): void {
    const wanted = [...this.patterns.values()];
    for (const channel of this.channels.values()) wanted.push(channel.subscription);
    for (const subscription of wanted) {
      subscription.heard = false;
      this.ask(subscription);
    }
  }

  /** Redis listens: the watchers of every channel it hears are told (again, after a new connection). */
  private heard(subscription: Subscription): void {
    subscription.heard = true;
    const heardBy =
      subscription.kind === 'SUBSCRIBE' ? [this.channels.get(subscription.name)] : this.routed.values();
    for (const channel of heardBy) {
      if (channel?.subscription !== subscription) continue;
      for (const watcher of [...channel.watchers])
        if (watcher.listening && channel.watchers.has(watcher)) safely(watcher.listening);
    }
  }
}

const unheard = (kind: Subscription['kind'], name: string): Subscription => ({
  kind,
  name,
  heard: false,
  asking: false,
});

function wakeAll(map: Pick<InFlightMap<Channel>, 'get'>, name: string, message: string): void {
  for (const watcher of map.get(name)?.watchers ?? []) safely(() => watcher.wake(message));
}

/**
 * A watcher that throws must not cost the others their wake, nor the connection (an error out of `onPush` drops it)
 * or the process (out of a promise's handler, an unhandled rejection).
 */
function safely(call: () => void): void {
  try {
    call();
  } catch {
    // the watcher's own fault; it polls as any watcher does
  }
}
