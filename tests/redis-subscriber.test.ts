import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { subscriber } from '../server/redis-subscriber';
import { RespConnection } from '../server/resp-connection';
import { eventually } from './support/harness';
import { REDIS_TEST_URL, uniquePrefix } from './support/redis';

const WAIT_MS = 10_000; // a busy CI machine answers late; every wait below ends as soon as its condition holds
const port = new URL(REDIS_TEST_URL).port;

/**
 * A subscriber logged in as a user of its own, allowed only the `<prefix>:ok*` channels for now (the SUBSCRIBE and the
 * PSUBSCRIBE of any other are refused), with an admin connection to change that; both let go, and the user deleted,
 * after `test`.
 */
async function withRestrictedUser(
  test: (t: {
    admin: RespConnection;
    user: string;
    prefix: string;
    channels: ReturnType<typeof subscriber>;
  }) => Promise<void>,
): Promise<void> {
  const admin = new RespConnection(new URL(REDIS_TEST_URL), { timeoutMs: 2_000, connectTimeoutMs: 2_000 });
  const user = `sub-test-${randomUUID()}`;
  const prefix = uniquePrefix('sub');
  await admin.call(['ACL', 'SETUSER', user, 'on', '>pw', '~*', '+@all', 'resetchannels', `&${prefix}:ok*`]);
  const channels = subscriber(`redis://${user}:pw@127.0.0.1:${port}`, { connectTimeoutMs: 2_000 });
  try {
    await test({ admin, user, prefix, channels });
  } finally {
    channels.close();
    await admin.call(['ACL', 'DELUSER', user]);
    admin.close();
  }
}

describe('pub/sub on its own connection (server/redis-subscriber.ts)', () => {
  it('asks again for what Redis refused once a new connection is ready, and tells every watcher again', () =>
    withRestrictedUser(async ({ admin, user, prefix, channels }) => {
      const seen: string[] = [];
      const watch = (name: string, pattern?: string) =>
        channels.subscribe(name, (message) => seen.push(`${name}=${message}`), {
          pattern,
          onListening: () => seen.push(`${name} listens`),
        });
      const count = (entry: string) => seen.filter((s) => s === entry).length;
      watch(`${prefix}:no`);
      watch(`${prefix}:no-pattern:1`, `${prefix}:no-pattern:*`);
      watch(`${prefix}:ok`);
      // Answers come in order: once the last is heard, the two before it were refused.
      await eventually(() => count(`${prefix}:ok listens`) === 1, WAIT_MS);
      expect(seen).toEqual([`${prefix}:ok listens`]);
      await admin.call(['PUBLISH', `${prefix}:ok`, 'a']);
      await eventually(() => count(`${prefix}:ok=a`) === 1, WAIT_MS);

      await admin.call(['ACL', 'SETUSER', user, 'allchannels']);
      expect(await admin.call(['CLIENT', 'KILL', 'USER', user])).toBe(1);
      const all = [`${prefix}:no`, `${prefix}:no-pattern:1`, `${prefix}:ok`];
      await eventually(() => all.every((name) => seen.includes(`${name} listens`)), WAIT_MS);
      expect(count(`${prefix}:ok listens`)).toBe(2); // what it may have missed while the connection was down
      for (const name of all) await admin.call(['PUBLISH', name, 'b']);
      await eventually(() => all.every((name) => seen.includes(`${name}=b`)), WAIT_MS);
    }));

  it('asks again for what Redis refused at the next watch, once it may listen', () =>
    withRestrictedUser(async ({ admin, user, prefix, channels }) => {
      const told: string[] = [];
      const watch = (name: string, who: string, pattern?: string) =>
        channels.subscribe(name, (m) => told.push(`${who}=${m}`), {
          pattern,
          onListening: () => told.push(who),
        });
      watch(`${prefix}:no`, 'first');
      watch(`${prefix}:no-pattern:1`, 'first routed', `${prefix}:no-pattern:*`);
      watch(`${prefix}:ok`, 'fence');
      await eventually(() => told.includes('fence'), WAIT_MS); // answered in order: the two before were refused
      await admin.call(['ACL', 'SETUSER', user, 'allchannels']); // no reconnect: the next watch asks
      watch(`${prefix}:no`, 'second');
      watch(`${prefix}:no-pattern:2`, 'second routed', `${prefix}:no-pattern:*`);
      const all = ['first', 'second', 'first routed', 'second routed'];
      await eventually(() => all.every((who) => told.includes(who)), WAIT_MS);
      await admin.call(['PUBLISH', `${prefix}:no`, 'x']);
      await admin.call(['PUBLISH', `${prefix}:no-pattern:2`, 'y']);
      await eventually(() => told.includes('second=x') && told.includes('second routed=y'), WAIT_MS);
      expect(told).toContain('first=x');
    }));

  it('a watcher that throws costs the others nothing: not their wake, not the connection', async () => {
    const admin = new RespConnection(new URL(REDIS_TEST_URL), { timeoutMs: 2_000, connectTimeoutMs: 2_000 });
    const name = `${uniquePrefix('sub')}:c`;
    const channels = subscriber(REDIS_TEST_URL, { connectTimeoutMs: 2_000 });
    const boom = () => {
      throw new Error('a faulty watcher');
    };
    try {
      let listening = 0;
      const heard: string[] = [];
      channels.subscribe(name, boom, { onListening: boom });
      channels.subscribe(name, (m) => heard.push(m), { onListening: () => listening++ });
      await eventually(() => listening === 1, WAIT_MS);
      for (const m of ['a', 'b']) await admin.call(['PUBLISH', name, m]);
      await eventually(() => heard.length === 2, WAIT_MS);
      // The same connection still listens: a new one would have told the watcher again.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(listening).toBe(1);
      expect(heard).toEqual(['a', 'b']);
    } finally {
      channels.close();
      admin.close();
    }
  });

  it('lets a channel go at its last watcher, keeps a pattern, and tells a later watcher at once', async () => {
    const admin = new RespConnection(new URL(REDIS_TEST_URL), { timeoutMs: 2_000, connectTimeoutMs: 2_000 });
    const prefix = uniquePrefix('sub');
    const channels = subscriber(REDIS_TEST_URL, { connectTimeoutMs: 2_000 });
    const numsub = async (name: string) =>
      Number(((await admin.call(['PUBSUB', 'NUMSUB', name])) as [string, number])[1]);
    try {
      let listening = 0;
      const heard: string[] = [];
      const first = channels.subscribe(`${prefix}:c`, (m) => heard.push(`first ${m}`), {
        onListening: () => listening++,
      });
      const second = channels.subscribe(`${prefix}:c`, (m) => heard.push(`second ${m}`));
      const routed = channels.subscribe(`${prefix}:p:1`, (m) => heard.push(`routed ${m}`), {
        pattern: `${prefix}:p:*`,
        onListening: () => listening++,
      });
      await eventually(() => listening === 2, WAIT_MS);
      const late = channels.subscribe(`${prefix}:c`, () => {}, { onListening: () => listening++ });
      await eventually(() => listening === 3, WAIT_MS); // already heard: told without asking Redis again
      await admin.call(['PUBLISH', `${prefix}:c`, 'x']);
      await admin.call(['PUBLISH', `${prefix}:p:1`, 'y']);
      await admin.call(['PUBLISH', `${prefix}:p:2`, 'nobody']);
      await eventually(() => heard.length === 3, WAIT_MS);
      expect(heard.sort()).toEqual(['first x', 'routed y', 'second x']);
      first();
      late();
      expect(await numsub(`${prefix}:c`)).toBe(1); // one watcher left
      second();
      await eventually(async () => (await numsub(`${prefix}:c`)) === 0, WAIT_MS);
      routed();
      // The pattern is kept for the next generation's channel: it still receives.
      expect(await admin.call(['PUBLISH', `${prefix}:p:3`, 'z'])).toBe(1);
    } finally {
      channels.close();
      admin.close();
    }
  });
});
