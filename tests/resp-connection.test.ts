import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { tcpRedis } from '../server/redis-tcp';
import {
  appendCommand,
  encodeCommand,
  INCOMPLETE,
  joinBytes,
  ReplyError,
  RespReader,
} from '../server/resp-codec';
import { RespConnection } from '../server/resp-connection';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';

/** Every answer a reader gives for these bytes, fed `cut` bytes at a time. */
function readAll(bytes: Buffer, cut: number): unknown[] {
  const reader = new RespReader();
  const answers: unknown[] = [];
  for (let i = 0; i < bytes.length; i += cut) {
    reader.push(bytes.subarray(i, i + cut));
    for (let value = reader.next(); value !== INCOMPLETE; value = reader.next()) answers.push(value);
  }
  return answers;
}

describe('RESP2 codec', () => {
  const wire = Buffer.from(
    [
      ':42\r\n:-7\r\n+OK\r\n-NOSCRIPT No matching script\r\n$-1\r\n*-1\r\n$0\r\n\r\n',
      '$12\r\nFüchse 🦊\r\n', // 12 bytes for 8 characters: lengths are bytes
      '*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n-ERR inside\r\n',
      `$2000\r\n${'x'.repeat(2000)}\r\n`,
    ].join(''),
  );

  it('reads every kind of answer, however the bytes are cut (inside a character too)', () => {
    for (const cut of [1, 2, 3, 7, 64, 1_000, wire.length]) {
      const answers = readAll(wire, cut);
      expect(answers.slice(0, 7)).toEqual([42, -7, 'OK', expect.any(ReplyError), null, null, '']);
      expect((answers[3] as ReplyError).message).toBe('NOSCRIPT No matching script');
      expect(answers[7]).toBe('Füchse 🦊');
      expect(answers[8]).toEqual([1, ['a', null], expect.any(ReplyError)]);
      expect(((answers[8] as unknown[])[2] as Error).message).toBe('ERR inside');
      expect(answers[9]).toBe('x'.repeat(2000));
      expect(answers).toHaveLength(10);
    }
  });

  it('reads a long answer cut into many reads whole, each element once', () => {
    // Shaped like the reply log's XRANGE: entries of [id, [field, value]], about 1 MB in all.
    const entries = Array.from({ length: 200 }, (_, i) => [`${i}-0`, ['e', `${'ü'.repeat(2_500)}${i}`]]);
    const encode = (value: unknown): string =>
      Array.isArray(value)
        ? `*${value.length}\r\n${value.map(encode).join('')}`
        : `$${Buffer.byteLength(String(value))}\r\n${value}\r\n`;
    const bytes = Buffer.from(`${encode(entries)}:1\r\n`);
    for (const cut of [7, 16_384, 65_536]) expect(readAll(bytes, cut)).toEqual([entries, 1]);
  });

  it('refuses bytes that are not RESP2', () => {
    const reader = new RespReader();
    reader.push(Buffer.from('HTTP/1.1 400\r\n'));
    expect(() => reader.next()).toThrow(/not RESP2/);
  });

  it('writes lengths in bytes, and bytes as they are', () => {
    expect(encodeCommand(['SET', 'k', 'Füchse', 12])).toBe(
      '*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\nFüchse\r\n$2\r\n12\r\n',
    );
    const bytes = Buffer.from([0xff, 0x00, 0x0d]);
    expect(encodeCommand(['SET', bytes])).toEqual(
      Buffer.concat([Buffer.from('*2\r\n$3\r\nSET\r\n$3\r\n'), bytes, Buffer.from('\r\n')]),
    );
  });

  it('writes headers past its tables of shared ones (64 arguments, 512 bytes) as they are', () => {
    const long = 'ü'.repeat(300); // 600 bytes
    expect(encodeCommand(['SET', long])).toBe(`*2\r\n$3\r\nSET\r\n$600\r\n${long}\r\n`);
    const many = Array.from({ length: 70 }, (_, i) => `a${i}`);
    const expected = `*70\r\n${many.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`;
    expect(encodeCommand(many)).toBe(expected);
  });

  it('writes any other argument as its string, as a command built by hand may hold one', () => {
    const odd = [undefined, true] as unknown as string[];
    expect(encodeCommand(['ECHO', ...odd])).toBe('*3\r\n$4\r\nECHO\r\n$9\r\nundefined\r\n$4\r\ntrue\r\n');
  });

  it('appends commands as the pieces of one write, joined as bytes once one of them is bytes', () => {
    const pieces: (string | Buffer)[] = [];
    expect(appendCommand(pieces, ['GET', 'k'])).toBe(false);
    expect(appendCommand(pieces, ['SET', 'k', Buffer.from([0xff])])).toBe(true);
    expect(appendCommand(pieces, ['INCRBY', 'n', 511])).toBe(false);
    expect(joinBytes(pieces)).toEqual(
      Buffer.concat([
        Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n'),
        Buffer.from([0xff]),
        Buffer.from('\r\n*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n511\r\n'),
      ]),
    );
  });
});

const connect = (url = REDIS_TEST_URL, timeoutMs = 2_000) =>
  new RespConnection(new URL(url), { timeoutMs, connectTimeoutMs: 1_000 });

describe('RespConnection on the real Redis', () => {
  it('answers each of many concurrent commands with its own answer, errors in their place', async () => {
    const redis = connect();
    try {
      const key = uniquePrefix('resp');
      const calls = Array.from({ length: 2_000 }, (_, i) =>
        i % 100 === 99 ? redis.call(['INCR', 'not', 'valid']) : redis.call(['ECHO', `${key}:${i} ü`]),
      );
      const settled = await Promise.allSettled(calls);
      settled.forEach((result, i) => {
        if (i % 100 === 99)
          expect(result).toMatchObject({ status: 'rejected', reason: expect.any(ReplyError) });
        else expect(result).toEqual({ status: 'fulfilled', value: `${key}:${i} ü` });
      });
      expect(await redis.call(['SET', `${key}:n`, 5, 'PX', 10_000])).toBe('OK');
      expect(await redis.call(['INCRBY', `${key}:n`, -8])).toBe(-3);
      expect(await redis.call(['GET', `${key}:missing`])).toBeNull();
    } finally {
      redis.close();
    }
  });

  it('refuses a command it cannot write, and sends none of it: the next one is answered', async () => {
    const redis = connect();
    try {
      await redis.call(['PING']);
      const unwritable = {
        toString: () => {
          throw new Error('no text for this');
        },
      } as unknown as string;
      await expect(redis.call(['ECHO', 'a', unwritable])).rejects.toThrow('no text for this');
      expect(await redis.call(['ECHO', 'next'])).toBe('next');
    } finally {
      redis.close();
    }
  });

  it('sends a batch in which one command carries bytes: every command in it is answered in its place', async () => {
    const redis = connect();
    try {
      const key = uniquePrefix('bytes');
      await redis.call(['PING']); // connected: the calls below go out as one batch after the first
      const first = redis.call(['ECHO', 'first']);
      const batch = [
        redis.call(['SET', key, Buffer.from([0xff, 0x00, 0xfe]), 'PX', 10_000]), // not UTF-8: sent as text, it would be 9 bytes
        redis.call(['STRLEN', key]),
        redis.call(['ECHO', 'ü'.repeat(300)]),
      ];
      expect(await first).toBe('first');
      expect(await Promise.all(batch)).toEqual(['OK', 3, 'ü'.repeat(300)]);
      expect(await redis.call(['ECHO', 'after'])).toBe('after'); // text again, after a batch joined as bytes
    } finally {
      redis.close();
    }
  });

  it('logs in with the URL’s user and password and selects its database', async () => {
    const admin = connect();
    const user = `resp-test-${randomUUID()}`;
    const key = uniquePrefix('db');
    try {
      await admin.call(['ACL', 'SETUSER', user, 'on', '>s3cret:/@', '~*', '+@all']);
      const inDb1 = connect(
        `redis://${user}:${encodeURIComponent('s3cret:/@')}@127.0.0.1:${new URL(REDIS_TEST_URL).port}/1`,
      );
      try {
        expect(await inDb1.call(['SET', key, 'one', 'PX', 10_000])).toBe('OK');
        expect(await inDb1.call(['ACL', 'WHOAMI'])).toBe(user);
        expect(await admin.call(['GET', key])).toBeNull(); // database 0
      } finally {
        await inDb1.call(['DEL', key]);
        inDb1.close();
      }
      const refused = connect(`redis://${user}:wrong@127.0.0.1:${new URL(REDIS_TEST_URL).port}`);
      await expect(refused.call(['PING'])).rejects.toThrow(/WRONGPASS/);
      refused.close();
    } finally {
      await admin.call(['ACL', 'DELUSER', user]);
      admin.close();
    }
  });

  it('selects the database a ?db= names, as ioredis read it', async () => {
    const admin = connect();
    const inDb1 = connect(`${REDIS_TEST_URL}?db=1&family=0`);
    const key = uniquePrefix('query-db');
    try {
      expect(await inDb1.call(['SET', key, 'one', 'PX', 10_000])).toBe('OK');
      expect(await admin.call(['GET', key])).toBeNull(); // database 0
      expect(await inDb1.call(['GET', key])).toBe('one');
    } finally {
      await inDb1.call(['DEL', key]);
      inDb1.close();
      admin.close();
    }
  });

  it('sends nothing on a connection whose database cannot be selected', async () => {
    const admin = connect();
    const key = uniquePrefix('select');
    try {
      const wrong = connect(`${REDIS_TEST_URL}/99`);
      // Called before the connection is made: it waits for the handshake, and fails with it.
      await expect(wrong.call(['SET', key, 'written', 'PX', 10_000])).rejects.toThrow(/DB index/);
      wrong.close();
      expect(await admin.call(['GET', key])).toBeNull();
    } finally {
      admin.close();
    }
  });

  it('refuses a URL it cannot read when it is made, without repeating it', () => {
    const made = (url: string) => () => connect(url).close();
    expect(made('redis://:50%off@127.0.0.1:6379')).toThrow(/REDIS_URL's password is not URL-encoded/);
    expect(made('redis://:50%off@127.0.0.1:6379')).not.toThrow(/50/);
    expect(made('redis://127.0.0.1:6379/zero')).toThrow(/database must be a number/);
    expect(made('http://127.0.0.1:6379')).toThrow(/redis:\/\//);
  });

  it('fails at once when nothing listens, and after close', async () => {
    const down = connect('redis://127.0.0.1:1');
    await expect(down.call(['PING'])).rejects.toThrow(/ECONNREFUSED/);
    await expect(down.call(['PING'])).rejects.toThrow(/ECONNREFUSED/); // the next attempt, after a short wait
    down.close();
    await expect(down.call(['PING'])).rejects.toThrow(/closed/);
  });
});

/**
 * A stand-in Redis: answers `+PONG` to each command, unless told to stay silent or to hold its answers until
 * `release`; keeps its connections, and how many commands each read brought.
 */
async function fakeRedis() {
  const connections: Socket[] = [];
  const reads: number[] = [];
  const held: (() => void)[] = [];
  const settings = { silent: false, hold: false };
  const server = createServer((socket) => {
    connections.push(socket);
    socket.on('error', () => {});
    socket.on('data', (data) => {
      const commands = data
        .toString()
        .split('\r\n')
        .filter((line) => line.startsWith('*')).length;
      reads.push(commands);
      const answer = () => socket.write('+PONG\r\n'.repeat(commands));
      if (settings.hold) held.push(answer);
      else if (!settings.silent) answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const release = () => {
    settings.hold = false;
    for (const answer of held.splice(0)) answer();
  };
  return { url, connections, reads, settings, release, server };
}

type Fake = Awaited<ReturnType<typeof fakeRedis>>;

/** A connection to a fresh stand-in Redis (`prepare` sees the fake first), both closed after `test`. */
async function withFake(
  timeoutMs: number,
  test: (fake: Fake, redis: RespConnection) => Promise<void>,
  prepare: (fake: Fake) => void = () => {},
): Promise<void> {
  const fake = await fakeRedis();
  prepare(fake);
  const redis = connect(fake.url, timeoutMs);
  try {
    await test(fake, redis);
  } finally {
    redis.close();
    fake.server.close();
  }
}

describe('RespConnection batches', () => {
  it('sends what was called while a batch waited for its answers in one write, after them', async () => {
    await withFake(2_000, async (fake, redis) => {
      await redis.call(['PING']);
      fake.settings.hold = true;
      const first = redis.call(['PING']);
      const next: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setImmediate(resolve)); // each in a turn of the event loop of its own
        next.push(redis.call(['PING']));
      }
      // The handshake's PING, one command, another: the 20 wait for its answer.
      await expect.poll(() => fake.reads).toEqual([1, 1, 1]);
      fake.release();
      await first;
      await Promise.all(next);
      expect(fake.reads).toEqual([1, 1, 1, 20]);
    });
  });
});

describe('RespConnection when the connection fails', () => {
  it('waits longer after each connection that closes before Redis answered', async () => {
    await withFake(
      2_000,
      async (fake) => {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        // 50, 100, 150 … ms apart: 6 in the first second (20 if each connect counted as made).
        expect(fake.connections.length).toBeGreaterThanOrEqual(2);
        expect(fake.connections.length).toBeLessThanOrEqual(7);
      },
      (fake) => fake.server.on('connection', (socket) => socket.destroy()),
    );
  });

  it('fails what a dropped connection sent; what it had not sent yet goes on the next one', async () => {
    await withFake(2_000, async (fake, redis) => {
      expect(await redis.call(['PING'])).toBe('PONG');
      fake.settings.hold = true;
      const sent = redis.call(['PING']);
      await expect.poll(() => fake.reads.length).toBe(3); // the handshake, the first PING, this one
      const unsent = redis.call(['ECHO', 'later']); // waits for the batch out
      await new Promise((resolve) => setImmediate(resolve));
      fake.settings.hold = false;
      fake.connections[0]?.destroy();
      await expect(sent).rejects.toThrow(/closed|ECONNRESET/);
      expect(await unsent).toBe('PONG'); // answered on the second connection
      expect(fake.connections).toHaveLength(2);
    });
  });

  it('takes a connection that answers nothing for a whole timeout for dead, and opens another', async () => {
    await withFake(500, async (fake, redis) => {
      expect(await redis.call(['PING'])).toBe('PONG');
      fake.settings.silent = true;
      const started = performance.now();
      await expect(redis.call(['PING'])).rejects.toThrow(/did not answer within 500 ms/);
      // At least one whole timeout (the check runs once per timeout: it waits one to two).
      expect(performance.now() - started).toBeGreaterThanOrEqual(490);
      fake.settings.silent = false;
      expect(await redis.call(['PING'])).toBe('PONG');
      expect(fake.connections).toHaveLength(2);
    });
  });

  it('without a timeout (the subscriber’s connection), waits as long as Redis takes, on the same connection', async () => {
    const fake = await fakeRedis();
    const redis = new RespConnection(new URL(fake.url), { connectTimeoutMs: 2_000 });
    try {
      expect(await redis.call(['PING'])).toBe('PONG');
      fake.settings.hold = true;
      const late = redis.call(['SUBSCRIBE', 'c']);
      await new Promise((resolve) => setTimeout(resolve, 600));
      fake.release();
      expect(await late).toBe('PONG');
      expect(fake.connections).toHaveLength(1);
    } finally {
      redis.close();
      fake.server.close();
    }
  });
});

describe('transactions and pipelines through the TCP client', () => {
  it('runs MULTI/EXEC as one, each answer (or error) in its place, and nothing between', async () => {
    const { redis, close } = tcpRedis(REDIS_TEST_URL, 2_000);
    const key = uniquePrefix('tx');
    try {
      const tx = redis.multi();
      tx.set(key, 'a', { px: 10_000 });
      tx.append(key, 'b');
      tx.incr(key); // not a number: its error comes in its place
      tx.get(key);
      const answers = await tx.exec({ keepErrors: true });
      expect(answers.map((a) => a.error)).toEqual([
        undefined,
        undefined,
        expect.stringMatching(/not an integer/),
        undefined,
      ]);
      expect(answers[3]?.result).toBe('ab');
      // One refused when queued (a wrong number of arguments) aborts them all, as on the REST API.
      const refused = redis.multi();
      refused.set(`${key}:2`, 'x');
      (refused as unknown as { chain(c: unknown): void }).chain({
        command: ['get'],
        deserialize: (r: unknown) => r,
      });
      await expect(refused.exec()).rejects.toThrow();
      expect(await redis.get(`${key}:2`)).toBeNull();
      const piped = await redis.pipeline().set(`${key}:3`, 1, { px: 10_000 }).incr(`${key}:3`).exec();
      expect(piped).toEqual(['OK', 2]);
    } finally {
      await close();
    }
  });
});

describe('RespConnection over TLS (rediss://)', () => {
  it('checks the certificate and speaks RESP inside it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resp-tls-'));
    const server = tlsServer(dir);
    try {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = new URL(`rediss://localhost:${(server.address() as AddressInfo).port}`);
      const ca = readFileSync(join(dir, 'cert.pem'));
      const trusted = new RespConnection(url, { timeoutMs: 2_000, connectTimeoutMs: 1_000, tls: { ca } });
      expect(await trusted.call(['ECHO', 'Füchse 🦊'])).toBe('Füchse 🦊');
      trusted.close();
      const untrusted = new RespConnection(url, { timeoutMs: 2_000, connectTimeoutMs: 1_000 });
      await expect(untrusted.call(['PING'])).rejects.toThrow(/self-signed|certificate/);
      untrusted.close();
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A TLS terminator in front of the real Redis, with a certificate for `localhost` made for this test. */
function tlsServer(dir: string) {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'].concat([
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
    ]),
    { cwd: dir, stdio: 'ignore', input: '' },
  );
  return createTlsServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    (client) => {
      const redis = netConnect(Number(new URL(REDIS_TEST_URL).port), '127.0.0.1');
      for (const socket of [client, redis]) socket.on('error', () => socket.destroy());
      client.pipe(redis).pipe(client);
    },
  );
}
