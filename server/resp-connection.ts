import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { redisUrlParts } from '../lib/config/rate-limit';
import {
  appendCommand,
  encodeCommand,
  INCOMPLETE,
  joinBytes,
  ReplyError,
  type RespArg,
  RespReader,
} from './resp-codec';

export interface RespOptions {
  /**
   * How long Redis may leave the oldest command unanswered before the connection is taken for dead: it is closed,
   * the commands it sent fail, and a new one is opened. The store guard's own timeout (lib/limits/store-guard.ts)
   * decides far sooner whether the store is down; this only frees calls that nobody waits for any more. Absent: no
   * such check (a subscribed connection, where a SUBSCRIBE answered late is no reason to start over; see
   * server/redis-subscriber.ts for how a dead peer is found then).
   */
  readonly timeoutMs?: number;
  readonly connectTimeoutMs: number;
  /** For `rediss://`: on top of the system's trusted certificates and the host name check (a test's own CA). */
  readonly tls?: ConnectionOptions;
  /**
   * For a subscribed connection: Redis's `message` and `pmessage` arrays, which answer no command, come here instead of
   * to the oldest command waiting.
   */
  readonly onPush?: (push: unknown[]) => void;
  /** Each time a connection is ready (its handshake answered): a subscriber asks for its channels again. */
  readonly onReady?: () => void;
}

interface Waiting {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** ioredis's default: 50 ms more for each failed attempt in a row, at most 2 s. */
const retryDelay = (attempts: number) => Math.min(attempts * 50, 2_000);

/**
 * One connection to a plain Redis (`redis://` or `rediss://`) for commands, as lean as the request path wants it:
 * every request runs about five scripts, and ioredis's work around each (a command object, its own timers, an
 * auto-pipeline object per batch, its decoder) cost about 2.4× a bare writer and reader. Answers come in the order
 * commands were sent, so one queue matches them.
 *
 * Commands go out in batches, as ioredis's auto-pipelining sent them: those called in one turn of the event loop in
 * one write, and while a batch waits for its answers the next one gathers. (Batching by tick alone made 2.1 writes per
 * request at 32 clients instead of 0.3, each a system call.) While it is not connected, commands wait for the next
 * attempt, and fail with it if it fails (as ioredis with `maxRetriesPerRequest: 0`); a dropped connection fails the
 * commands it had sent (whether they ran is unknown), and is opened again after `retryDelay`.
 */
export class RespConnection {
  private socket: Socket | undefined;
  private connected = false;
  private closed = false;
  private readonly reader = new RespReader();
  /** Answers expected, oldest first: `head` is the next; the array is compacted now and then. */
  private waiting: (Waiting | undefined)[] = [];
  private head = 0;
  /** AUTH, SELECT and PING, sent first on each connection; commands wait for their answers. */
  private readonly hello: { readonly text: string; readonly answers: number };
  /** Answers to `hello` still to come on this connection. */
  private handshake = 0;
  /** The commands called while a batch was out (or before the connection was ready), as the pieces of one write. */
  private unsent: (string | Buffer)[] = [];
  private unsentCommands = 0;
  /** Some piece of `unsent` is bytes: it is joined as a `Buffer`. */
  private unsentBytes = false;
  /** Answers still to come for what was written: while there are any, new commands wait and go out together after. */
  private inFlight = 0;
  private flushQueued = false;
  private attempts = 0;
  private retry: NodeJS.Timeout | undefined;
  private readonly watchdog: NodeJS.Timeout | undefined;
  private answered = 0;
  private answeredAtLastCheck = -1;

  constructor(
    private readonly url: URL,
    private readonly options: RespOptions,
  ) {
    this.hello = greeting(url);
    if (options.timeoutMs !== undefined) {
      this.watchdog = setInterval(() => this.checkProgress(), options.timeoutMs);
      this.watchdog.unref();
    }
    this.open();
  }

  /** Sends one command; resolves with its answer, rejects with a `ReplyError` for an error answer. */
  call(args: readonly RespArg[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('Connection is closed.'));
    const before = this.unsent.length;
    try {
      if (appendCommand(this.unsent, args)) this.unsentBytes = true;
    } catch (error) {
      this.unsent.length = before; // none of it: half a command would put the next one out of step
      return Promise.reject(error);
    }
    this.unsentCommands++;
    const answer = new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.connected && this.inFlight === 0 && !this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush());
    }
    return answer;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retry);
    this.drop(new Error('Connection is closed.'));
  }

  private open(): void {
    this.retry = undefined;
    const { hostname, port, protocol } = this.url;
    const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    const options = { host, port: Number(port || 6379) };
    const socket =
      protocol === 'rediss:'
        ? tlsConnect({ ...options, servername: isIP(host) ? undefined : host, ...this.options.tls }, () =>
            this.onConnect(socket),
          )
        : tcpConnect(options, () => this.onConnect(socket));
    socket.setNoDelay(true);
    socket.setTimeout(this.options.connectTimeoutMs, () =>
      socket.destroy(
        new Error(`Redis did not accept a connection within ${this.options.connectTimeoutMs} ms`),
      ),
    );
    let failure: Error | undefined;
    socket.on('data', (chunk: Buffer) => this.socket === socket && this.onData(chunk));
    socket.on('error', (error) => {
      failure = error; // 'close' follows, and fails what waited with it
    });
    socket.on('close', () => {
      if (this.socket === socket) this.drop(failure ?? new Error('Connection is closed.'));
    });
    this.socket = socket;
  }

  /**
   * The handshake goes alone: a command sent with a SELECT that fails would run on database 0. The connection counts
   * as made (the retry delay starts over) only once Redis has answered it, so one that accepts and then refuses or
   * closes is retried ever more slowly.
   */
  private onConnect(socket: Socket): void {
    socket.setTimeout(0);
    socket.setKeepAlive(true, 30_000);
    this.handshake = this.hello.answers;
    socket.write(this.hello.text);
  }

  private greeted(value: unknown): void {
    this.handshake--;
    // A password given to a Redis that has none is let through, as ioredis does.
    if (value instanceof ReplyError && !/without any password|no password is set/i.test(value.message)) {
      // Not a `ReplyError`: the commands waiting never ran, and their callers must not take this for their answer.
      this.drop(new Error(`Redis refused the connection: ${value.message}`));
      return;
    }
    if (this.handshake > 0) return;
    this.connected = true;
    this.attempts = 0;
    this.options.onReady?.();
    this.flush();
  }

  private flush(): void {
    this.flushQueued = false;
    const { socket, unsent, unsentBytes } = this;
    if (!socket || !this.connected || this.unsentCommands === 0) return;
    this.inFlight += this.unsentCommands;
    this.unsent = [];
    this.unsentCommands = 0;
    this.unsentBytes = false;
    socket.write(unsentBytes ? joinBytes(unsent) : unsent.join(''));
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    try {
      for (let value = this.reader.next(); value !== INCOMPLETE; value = this.reader.next())
        this.answer(value);
    } catch (error) {
      this.drop(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private answer(value: unknown): void {
    if (this.handshake > 0) {
      this.greeted(value);
      return;
    }
    if (this.options.onPush && isPush(value)) {
      this.options.onPush(value);
      return;
    }
    // The batch out is answered: what queued meanwhile goes now, in one write.
    if (--this.inFlight === 0 && this.unsentCommands > 0) this.flush();
    const waiting = this.waiting[this.head];
    if (!waiting) throw new Error('Redis answered a command that was never sent');
    this.waiting[this.head++] = undefined; // let it go before the queue is compacted
    this.answered++;
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head >= 1_024) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    if (value instanceof ReplyError) waiting.reject(value);
    else waiting.resolve(value);
  }

  /**
   * Fails the commands this connection sent, and lets it go. Those it never got to send (called while a batch was
   * out) wait for the next connection, as those called after the drop do: unless this one never got past its
   * handshake, or is closed for good, when they fail with it. The next connection is opened after `retryDelay`, unless
   * one already waits to be (there was no connection to let go).
   */
  private drop(error: Error): void {
    const { waiting, head, socket, unsent } = this;
    const carried = this.connected && !this.closed ? this.unsentCommands : 0;
    const failed = waiting.length - carried;
    this.waiting = carried ? waiting.slice(failed) : [];
    this.head = 0;
    this.unsent = carried ? unsent : [];
    this.unsentCommands = carried;
    if (!carried) this.unsentBytes = false;
    this.handshake = 0;
    this.inFlight = 0;
    this.answeredAtLastCheck = -1;
    this.connected = false;
    this.socket = undefined;
    this.reader.reset();
    socket?.destroy();
    if (socket && !this.closed) {
      this.attempts++;
      this.retry = setTimeout(() => this.open(), retryDelay(this.attempts));
      this.retry.unref();
    }
    for (let i = head; i < failed; i++) waiting[i]?.reject(error);
  }

  /** A whole `timeoutMs` with commands waiting and not one answered: Redis answers in order, so none will be. */
  private checkProgress(): void {
    const pending = this.waiting.length > this.head;
    const stuck = pending && this.answered === this.answeredAtLastCheck;
    this.answeredAtLastCheck = pending ? this.answered : -1;
    if (stuck) this.drop(new Error(`Redis did not answer within ${this.options.timeoutMs} ms`));
  }
}

function isPush(value: unknown): value is unknown[] {
  return Array.isArray(value) && (value[0] === 'message' || value[0] === 'pmessage');
}

/**
 * The handshake for this URL: AUTH with its user and password, SELECT its database, then PING, so that the connection
 * is ready once Redis has answered. Read once, when the connection is made: a URL that cannot be read fails it then.
 */
function greeting(url: URL): { text: string; answers: number } {
  const { username, password, db } = redisUrlParts(url);
  const hello: RespArg[][] = [];
  if (password) hello.push(username ? ['AUTH', username, password] : ['AUTH', password]);
  if (db > 0) hello.push(['SELECT', db]);
  hello.push(['PING']);
  return { text: hello.map(encodeCommand).join(''), answers: hello.length };
}
