import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodySlabs, LARGEST_SHARED, SLAB_BYTES } from '../server/body-slabs';
import { undiciTransport } from '../server/undici-transport';

/** Text of 1 to 4 UTF-8 bytes a unit, lone surrogates (3 bytes each, as U+FFFD) included. */
const anyUnit = fc.oneof(
  fc.constantFrom('a', 'é', '€', '🦊', '\uD800', '\uDFFF'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

describe('bodySlabs: upstream bodies in slabs of their own', () => {
  it('gives every body back byte for byte, none overwriting another, across many slabs', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: anyUnit, maxLength: 1500, size: 'max' }), { maxLength: 20, size: 'max' }),
        (texts) => {
          const bytesOf = bodySlabs();
          const bodies = texts.map(bytesOf);
          bodies.forEach((body, i) => {
            expect(body.equals(Buffer.from(texts[i] as string))).toBe(true);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('puts small bodies side by side in one slab that is not Node’s shared pool', () => {
    const bytesOf = bodySlabs();
    const [a, b] = [bytesOf('{"first":1}'), bytesOf('{"second":"é"}')];
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer).not.toBe(Buffer.from('x').buffer);
    expect(b.byteOffset % 8).toBe(0);
    expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + a.length);
  });

  it('gives a body larger than half a slab in bytes (not in characters) bytes of its own', () => {
    const bytesOf = bodySlabs();
    const small = bytesOf('{}');
    const wide = '€'.repeat(LARGEST_SHARED / 2); // half as many characters as the limit, 1.5 times its bytes
    const large = bytesOf(wide);
    expect(large.buffer).not.toBe(small.buffer);
    expect(large.toString()).toBe(wide);
    const atLimit = bytesOf('b'.repeat(LARGEST_SHARED));
    expect(atLimit.buffer).toBe(small.buffer);
    expect(atLimit.toString()).toBe('b'.repeat(LARGEST_SHARED));
  });

  it('fills a slab to its last byte, and never past it', () => {
    const filler = 'a'.repeat(SLAB_BYTES - LARGEST_SHARED - 96); // with a body of LARGEST_SHARED: 96 bytes left
    const fill = (bytesOf: (text: string) => Buffer) => [
      bytesOf('a'.repeat(LARGEST_SHARED)),
      bytesOf(filler),
    ];
    const bytesOf = bodySlabs();
    const [first] = fill(bytesOf);
    const last = bytesOf('€'.repeat(32)); // exactly the 96 left
    expect(last.buffer).toBe(first?.buffer);
    expect(last.byteOffset + last.length).toBe(SLAB_BYTES);
    expect(last.toString()).toBe('€'.repeat(32));
    const again = bodySlabs();
    const [full] = fill(again);
    const over = again('€'.repeat(33)); // 99 bytes
    expect(over.buffer).not.toBe(full?.buffer);
    expect(over.toString()).toBe('€'.repeat(33));
    expect(full?.toString()).toBe('a'.repeat(LARGEST_SHARED));
  });
});

describe('undiciTransport', () => {
  it('sends each body intact, many at once', async () => {
    const received: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push(Buffer.concat(chunks).toString());
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/chat/completions`;
    const send = undiciTransport();
    const bodies = Array.from({ length: 100 }, (_, i) => JSON.stringify({ i, text: 'Füchse 🦊 '.repeat(i) }));
    try {
      await Promise.all(
        bodies.map(async (body) => {
          const response = await send(url, { headers: {}, body, signal: new AbortController().signal });
          await response.text();
        }),
      );
    } finally {
      server.close();
    }
    expect(received.sort()).toEqual([...bodies].sort());
  });
});
