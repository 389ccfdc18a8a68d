import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodySlabs } from '../server/body-slabs';
import { undiciTransport } from '../server/undici-transport';

describe('bodySlabs: upstream bodies in slabs of their own', () => {
  it('gives every body back byte for byte, none overwriting another, across many slabs', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 3000 }), { maxLength: 60 }), (texts) => {
        const bytesOf = bodySlabs();
        const bodies = texts.map(bytesOf);
        bodies.forEach((body, i) => {
          expect(body.equals(Buffer.from(texts[i] as string))).toBe(true);
        });
      }),
      { numRuns: 300 },
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

  it('starts a new slab when the next body does not fit, and gives a large body bytes of its own', () => {
    const bytesOf = bodySlabs();
    const first = bytesOf('a'.repeat(4000));
    const filler = Array.from({ length: 3 }, () => bytesOf('€'.repeat(1300))); // 3,900 bytes each
    expect(filler.every((body) => body.buffer === first.buffer)).toBe(true);
    const next = bytesOf('€'.repeat(1300));
    expect(next.buffer).not.toBe(first.buffer);
    expect(next.toString()).toBe('€'.repeat(1300));
    const large = bytesOf('b'.repeat(5000));
    expect(large.buffer).not.toBe(next.buffer);
    expect(large.toString()).toBe('b'.repeat(5000));
    expect(first.toString()).toBe('a'.repeat(4000));
  });

  it('fills a slab to its last byte, and never past it', () => {
    const bytesOf = bodySlabs();
    const full = [4096, 4096, 4096, 4000].map((n) => bytesOf('a'.repeat(n))); // 96 bytes left
    const over = bytesOf('€'.repeat(33)); // 99 bytes
    expect(over.buffer).not.toBe(full[0]?.buffer);
    expect(over.toString()).toBe('€'.repeat(33));
    const bytesOf2 = bodySlabs();
    const first = bytesOf2('a'.repeat(4096));
    for (const n of [4096, 4096, 4000]) bytesOf2('a'.repeat(n));
    const last = bytesOf2('€'.repeat(32)); // exactly the 96 left
    expect(last.buffer).toBe(first.buffer);
    expect(last.byteOffset + last.length).toBe(last.buffer.byteLength);
    expect(last.toString()).toBe('€'.repeat(32));
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
