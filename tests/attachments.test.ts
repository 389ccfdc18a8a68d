import type { UIMessage } from 'ai';
import { describe, expect, it } from 'vitest';
import { IMAGE_TOKENS } from '../lib/parts/content';
import { sniffMediaType } from '../lib/parts/magic-bytes';
import type { ChatMetadata } from '../lib/types';
import { buildHandler, chatRequest, startHarness, streamedRequest, testConfig } from './support/harness';
import { chatLikeUseChat } from './support/ui';

const h = await startHarness({ ATTACHMENT_HOSTS: 'images.example.com', MAX_ATTACHMENTS: '2' });
const withEnv = (env: Record<string, string>) =>
  buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url, ...env }));

type Message = UIMessage<ChatMetadata>;
type FilePart = { type: 'file'; mediaType: string; url: string; filename?: string };

/** A real 1×1 PNG. */
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==';
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
/** A PNG padded to `size` bytes: the signature and IHDR chunk are what the magic-byte check reads. */
const bigPng = (size: number) => {
  const bytes = new Uint8Array(size);
  bytes.set(Buffer.from(PNG, 'base64'));
  return base64(bytes);
};
/** The start of a JPEG (SOI and a JFIF APP0 marker): enough for its magic bytes. */
const JPEG = base64(
  new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1]),
);
const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n',
).toString('base64');

const file = (mediaType: string, url: string, filename = 'upload'): FilePart => ({
  type: 'file',
  mediaType,
  url,
  filename,
});
const png = (data = PNG) => file('image/png', `data:image/png;base64,${data}`, 'dot.png');

/** What `sendMessage({ text, files })` puts in a message: the files first, then the text. */
const ask = (text: string, ...files: FilePart[]): Message[] => [
  { id: 'q1', role: 'user', parts: [...files, { type: 'text', text }] },
];

const sentUser = () => h.fake.calls[0]?.body.messages?.at(-1);

async function refusal(res: Response) {
  return {
    status: res.status,
    ...((await res.json()) as { error: { code: string; message: string; param?: string } }),
  };
}

const uiBody = (messages: Message[]) => ({ id: 'chat-1', messages, trigger: 'submit-message' });

describe('attachments', () => {
  it('sends a valid PNG data URL upstream as an image_url part next to the text', async () => {
    const result = await chatLikeUseChat(h.handler, ask('What is in this picture?', png()));
    expect(result.errors).toEqual([]);
    expect(sentUser()).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this picture?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      ],
    });
    // The demo reply still echoes the text of a message with attachments.
    expect(result.text).toContain('What is in this picture?');
  });

  it('refuses a JPEG declared as a PNG, naming the part', async () => {
    const res = await h.handler(
      chatRequest(uiBody(ask('Look', file('image/png', `data:image/png;base64,${JPEG}`)))),
    );
    const { status, error } = await refusal(res);
    expect(status).toBe(400);
    expect(error.param).toBe('messages[0].parts[0].url');
    expect(error.message).toMatch(
      /does not match its declared type "image\/png" \(its content is image\/jpeg\)/,
    );
    expect(h.fake.calls).toHaveLength(0);
  });

  it('refuses a file over MAX_ATTACHMENT_BYTES, naming the limit', async () => {
    const small = withEnv({ MAX_ATTACHMENT_BYTES: '1000' });
    const res = await small(chatRequest(uiBody(ask('Look', png(bigPng(2000))))));
    const { status, error } = await refusal(res);
    expect(status).toBe(400);
    expect(error.param).toBe('messages[0].parts[0].url');
    expect(error.message).toMatch(/too large \(2000 bytes; at most 1000, MAX_ATTACHMENT_BYTES\)/);
  });

  it('refuses more than MAX_ATTACHMENTS files, naming the limit', async () => {
    // useChat's transport raises the 400 as the error the app shows.
    await expect(chatLikeUseChat(h.handler, ask('Three pictures', png(), png(), png()))).rejects.toThrow(
      /at most 2 per message, MAX_ATTACHMENTS/,
    );
    const res = await h.handler(chatRequest(uiBody(ask('Three pictures', png(), png(), png()))));
    expect((await refusal(res)).error.param).toBe('messages[0].parts[2]');
  });

  it('refuses a media type that is not allowed, naming the allowed ones', async () => {
    const res = await h.handler(
      chatRequest(uiBody(ask('Read it', file('application/pdf', `data:application/pdf;base64,${PDF}`)))),
    );
    const { status, error } = await refusal(res);
    expect(status).toBe(400);
    expect(error.param).toBe('messages[0].parts[0].mediaType');
    expect(error.message).toMatch(/allowed: image\/png, image\/jpeg, image\/webp, image\/gif/);
  });

  it('passes an https image URL from an ATTACHMENT_HOSTS host on as a URL, and never fetches it', async () => {
    // The host does not exist: a proxy that fetched it would fail; the fake records every request it gets.
    const url = 'https://images.example.com/cat.png';
    const result = await chatLikeUseChat(h.handler, ask('Describe it', file('image/png', url)));
    expect(result.errors).toEqual([]);
    expect(h.fake.calls).toHaveLength(1);
    expect(sentUser()?.content).toEqual([
      { type: 'text', text: 'Describe it' },
      { type: 'image_url', image_url: { url } },
    ]);
  });

  it.each([
    ['another host', 'https://evil.example.net/cat.png', /ATTACHMENT_HOSTS: images\.example\.com/],
    ['a look-alike host', 'https://images.example.com.evil.net/cat.png', /ATTACHMENT_HOSTS/],
    ['http', 'http://images.example.com/cat.png', /must be a data URL or an https URL/],
    ['a local address', 'https://127.0.0.1/cat.png', /ATTACHMENT_HOSTS/],
  ])('refuses an image URL on %s', async (_name, url, message) => {
    const res = await h.handler(chatRequest(uiBody(ask('Describe it', file('image/png', url)))));
    const { status, error } = await refusal(res);
    expect(status).toBe(400);
    expect(error.param).toBe('messages[0].parts[0].url');
    expect(error.message).toMatch(message);
    expect(h.fake.calls).toHaveLength(0);
  });

  it('answers 400 images_not_supported for a model declared without vision', async () => {
    const blind = withEnv({ MODEL_OPTIONS: '{"test-model": {"vision": false}}' });
    const res = await blind(chatRequest(uiBody(ask('What is this?', png()))));
    const { status, error } = await refusal(res);
    expect(status).toBe(400);
    expect(error.code).toBe('images_not_supported');
    expect(error.message).toBe('This assistant cannot read images.');
    expect(h.fake.calls).toHaveLength(0);
    // Text still works for that model.
    const text = await chatLikeUseChat(blind, ask('Hello'));
    expect(text.errors).toEqual([]);
  });

  it('sends a PDF as a file part when ATTACHMENT_TYPES allows it', async () => {
    const pdfs = withEnv({ ATTACHMENT_TYPES: 'image/png,application/pdf' });
    const url = `data:application/pdf;base64,${PDF}`;
    const result = await chatLikeUseChat(pdfs, ask('Summarize', file('application/pdf', url, 'report.pdf')));
    expect(result.errors).toEqual([]);
    expect(sentUser()?.content).toEqual([
      { type: 'text', text: 'Summarize' },
      { type: 'file', file: { filename: 'report.pdf', file_data: url } },
    ]);
  });

  it('checks a text file as UTF-8 without binary content', async () => {
    const texts = withEnv({ ATTACHMENT_TYPES: 'text/plain' });
    const ok = `data:text/plain;base64,${Buffer.from('Hello, file').toString('base64')}`;
    const good = await chatLikeUseChat(texts, ask('Read', file('text/plain', ok, 'a.txt')));
    expect(good.errors).toEqual([]);
    const binary = `data:text/plain;base64,${PNG}`;
    const res = await texts(chatRequest(uiBody(ask('Read', file('text/plain', binary)))));
    expect((await refusal(res)).error.message).toMatch(/does not match its declared type "text\/plain"/);
  });

  it('reserves IMAGE_TOKENS more of the token budget for each image', async () => {
    const budgeted = withEnv({ TOKEN_BUDGET: '100000' });
    const tokensLeft = (res: Response) =>
      Number(/"tokens";r=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1]);
    const plain = await budgeted(
      chatRequest(uiBody(ask('Same text')), { headers: { 'x-real-ip': '198.51.100.1' } }),
    );
    const image = await budgeted(
      chatRequest(uiBody(ask('Same text', png())), { headers: { 'x-real-ip': '198.51.100.2' } }),
    );
    expect(plain.status).toBe(200);
    expect(image.status).toBe(200);
    await Promise.all([plain.text(), image.text()]);
    expect(tokensLeft(plain) - tokensLeft(image)).toBe(IMAGE_TOKENS);
  });

  it('accepts an 800 KB image under the default MAX_BODY_BYTES, and still refuses a 300 KB text body', async () => {
    expect(h.config.caps.maxBodyBytes).toBe(256 * 1024);
    const result = await chatLikeUseChat(h.handler, ask('A big one', png(bigPng(800 * 1024))));
    expect(result.errors).toEqual([]);
    expect(h.fake.calls).toHaveLength(1);
    h.fake.reset();
    // 40 messages of 7,500 characters: each under MAX_MESSAGE_CHARS, the text over MAX_BODY_BYTES.
    const long: Message[] = Array.from({ length: 40 }, (_, i) => ({
      id: `m${i}`,
      role: i % 2 ? 'assistant' : 'user',
      parts: [{ type: 'text', text: 'x'.repeat(7_500) }],
    }));
    const res = await h.handler(chatRequest(uiBody([...long, ...ask('Last')])));
    expect(res.status).toBe(413);
    expect(h.fake.calls).toHaveLength(0);
  });

  it('reads no further than MAX_BODY_BYTES plus MAX_ATTACHMENTS files in base64', async () => {
    const capped = withEnv({ MAX_BODY_BYTES: '2000', MAX_ATTACHMENTS: '1', MAX_ATTACHMENT_BYTES: '3000' });
    const cap = 2000 + 4000 + 100; // the text, one file of 3,000 bytes as base64, its data URL prefix
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 512;
        controller.enqueue(new Uint8Array(512).fill(0x20));
      },
    });
    const res = await capped(streamedRequest(endless));
    expect(res.status).toBe(413);
    expect((await refusal(res)).error.message).toContain(`${cap} bytes`);
    expect(pulled).toBeLessThanOrEqual(cap + 2 * 512);
  });

  it('drops an image in older history (it was answered already), counting it', async () => {
    const result = await chatLikeUseChat(h.handler, [
      ...ask('What is this?', png()),
      { id: 'a1', role: 'assistant', parts: [{ type: 'text', text: 'A dot.' }] },
      { id: 'q2', role: 'user', parts: [{ type: 'text', text: 'What colour?' }] },
    ]);
    expect(result.errors).toEqual([]);
    expect(h.fake.calls[0]?.body.messages?.[1]).toEqual({ role: 'user', content: 'What is this?' });
    expect(h.logs.at(-1)?.dropped_parts).toBe(1);
  });
});

describe('the magic bytes', () => {
  const bytes = (...parts: (string | number[])[]) =>
    new Uint8Array(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

  it('names the five signatures an attachment may have, and nothing else', () => {
    expect(sniffMediaType(bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0a]))).toBe('image/png');
    expect(sniffMediaType(bytes([0xff, 0xd8, 0xff, 0xe0]))).toBe('image/jpeg');
    expect(sniffMediaType(bytes('GIF87a'))).toBe('image/gif');
    expect(sniffMediaType(bytes('GIF89a'))).toBe('image/gif');
    expect(sniffMediaType(bytes('RIFF', [1, 2, 3, 4], 'WEBPVP8 '))).toBe('image/webp');
    expect(sniffMediaType(bytes('%PDF-1.7'))).toBe('application/pdf');
    expect(sniffMediaType(bytes('GIF88a'))).toBeUndefined();
    expect(sniffMediaType(bytes('RIFF', [1, 2, 3, 4], 'WAVEfmt '))).toBeUndefined(); // a RIFF that is audio
    expect(sniffMediaType(bytes('PK', [3, 4]))).toBeUndefined();
    expect(sniffMediaType(new Uint8Array())).toBeUndefined();
  });
});
