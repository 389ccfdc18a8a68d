import { describe, expect, it } from 'vitest';
import { normalizeIp } from '../lib/limits/caller-identity';
import { buildHandler, chatRequest, startHarness, testConfig, userSays } from './support/harness';

const h = await startHarness();

const REFUSED = undefined;

/** Every spelling on one line lands on the id at its end: one caller, one bucket. */
const SAME_CALLER: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['1.2.3.4', ['1.2.3.4', ' 1.2.3.4 ', '::ffff:1.2.3.4', '::FFFF:1.2.3.4', '[::ffff:1.2.3.4]']],
  ['1.2.3.4', ['::ffff:0102:0304', '::ffff:102:304', '0:0:0:0:0:ffff:102:304', '0::ffff:1.2.3.4']],
  ['1.2.3.4', ['0000:0000:0000:0000:0000:ffff:0102:0304', '::ffff:1.2.3.4%eth0']],
  ['255.255.255.255', ['255.255.255.255', '::ffff:ffff:ffff']],
  ['127.0.0.1', ['127.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1']],
  ['::1', ['::1', '0:0:0:0:0:0:0:1', '0000::0001', '[::1]', '::1%lo0']],
  [
    '2001:db8:1:2::/64',
    [
      '2001:db8:1:2::1',
      '2001:DB8:1:2:AAAA:BBBB:CCCC:DDDD',
      '2001:0db8:0001:0002:0000:0000:0000:0001',
      '2001:db8:1:2:0:0:0:7',
      '[2001:db8:1:2::1]',
      '2001:db8:1:2::1%eth0',
      '2001:db8:1:2::1.2.3.4',
    ],
  ],
  ['2001:db8:0:0::/64', ['2001:db8::1', '2001:db8:0:0:1::', '2001:0DB8:0000:0000::abcd']],
  ['fe80:0:0:0::/64', ['fe80::1%eth0', 'FE80::aaaa:1%25en0']],
];

const NOT_A_CALLER: readonly string[] = [
  // Leading zeros: octal to some parsers (01.02.03.04 is not obviously 1.2.3.4), so refused rather than guessed.
  '01.02.03.04',
  '1.2.3.04',
  '001.2.3.4',
  '::ffff:01.2.3.4',
  // Unspecified, and the rest of ::/64, which would otherwise all share one bucket.
  '0.0.0.0',
  '::',
  '0:0:0:0:0:0:0:0',
  '::ffff:0.0.0.0',
  '::ffff:0:0',
  '::2',
  '::1.2.3.4', // IPv4-compatible (deprecated)
  '::ffff:0:1.2.3.4', // IPv4-translated
  '::1:0:0:0',
  // Not addresses at all.
  '',
  '   ',
  'not-an-ip',
  '999.1.1.1',
  '256.0.0.1',
  '1.2.3',
  '1.2.3.4.5',
  '1.2.3.4:8080',
  '0x7f.0.0.1',
  '1:2:3:4:5:6:7:8:9',
  '1::2::3',
  ':1:2:3:4:5:6:7',
  '1:2:3:4:5:6:7:',
  '1:2:3:4:5:6::1.2.3.4',
  '12345::1',
  'g::1',
  '::ffff:1.2.3',
  '[1.2.3.4]',
];

describe('caller ids: one canonical id per caller, however the address is spelled', () => {
  it.each(SAME_CALLER.flatMap(([id, inputs]) => inputs.map((input) => [input, id] as const)))(
    '%j is %s',
    (input, id) => {
      expect(normalizeIp(input)).toBe(id);
    },
  );

  it.each(NOT_A_CALLER.map((input) => [input]))('%j is refused', (input) => {
    expect(normalizeIp(input)).toBe(REFUSED);
  });

  it('refuses those callers over HTTP with 403 caller_unidentified, and counts spellings as one caller', async () => {
    const handler = buildHandler(
      testConfig({ OPENAI_BASE_URL: h.fake.url, CLIENT_IP_HEADER: 'x-client-ip', RATE_LIMIT_REQUESTS: '1' }),
    );
    const from = (ip: string) =>
      handler(chatRequest(userSays('Hi'), { headers: { accept: 'text/plain', 'x-client-ip': ip } }));
    for (const ip of ['01.02.03.04', '0.0.0.0', '::', '::2', '::ffff:0:0', 'garbage']) {
      const res = await from(ip);
      expect([ip, res.status]).toEqual([ip, 403]);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('caller_unidentified');
    }
    expect(h.fake.calls).toHaveLength(0);

    const first = await from('198.51.100.9');
    expect(first.status).toBe(200);
    await first.text();
    for (const ip of ['::ffff:c633:6409', '0:0:0:0:0:ffff:198.51.100.9']) {
      expect([ip, (await from(ip)).status]).toEqual([ip, 429]);
    }
    // Loopback has an id of its own: it does not share the (refused) rest of ::/64, nor anyone else's bucket.
    const loopback = await from('::1');
    expect(loopback.status).toBe(200);
    await loopback.text();
  });
});
