import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { keepHeapWhenIdle } from '../server/lifecycle';

/**
 * The runtime's floor: the least a proxy speaking these two protocols must do on Node, and nothing else. HTTP in
 * (`node:http`), the JSON body parsed and mapped to OpenAI messages, one pooled keep-alive request to the upstream
 * (undici), every SSE event split and `JSON.parse`d, and each token framed as the UI message stream and written as
 * it arrives. No validation, limits, logs, failover, cache or reply log. Whatever the proxy costs above this row is
 * ours, not the runtime's.
 */
// The runtime setting the proxy's server makes: the floor is the same runtime, tuned the same way, so that the
// distance between the two rows stays ours.
keepHeapWhenIdle();
const upstream = process.env.OPENAI_BASE_URL ?? '';
const agent = new Agent({ keepAliveTimeout: 10_000, connections: 1_024 });
const sse = (chunk: unknown) => `data: ${JSON.stringify(chunk)}\n\n`;
const END = `${sse({ type: 'text-end', id: '0' })}${sse({ type: 'finish' })}data: [DONE]\n\n`;

interface UiMessage {
  readonly role: string;
  readonly parts?: readonly { readonly type: string; readonly text?: string }[];
}

const server = createServer(async (req, res) => {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const { messages } = JSON.parse(Buffer.concat(chunks).toString()) as { messages: UiMessage[] };
    const body = JSON.stringify({
      model: 'bench-model',
      stream: true,
      messages: messages.map((m) => ({
        role: m.role,
        content: (m.parts ?? []).map((p) => p.text ?? '').join(''),
      })),
    });
    const up = await request(`${upstream}/chat/completions`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
      dispatcher: agent,
    });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-vercel-ai-ui-message-stream': 'v1' });
    res.write(sse({ type: 'start' }) + sse({ type: 'text-start', id: '0' }));
    let buffer = '';
    // As the proxy does (lib/upstream/openai-http.ts): the reply ends at `[DONE]`, with the tokens that came with it
    // in the same write, and the rest of the body is only read so the connection can be reused.
    let ended = false;
    up.body.setEncoding('utf8');
    for await (const text of up.body) {
      if (ended) continue;
      buffer += text;
      let out = '';
      for (let end = buffer.indexOf('\n\n'); end >= 0 && !ended; end = buffer.indexOf('\n\n')) {
        const data = buffer.slice(6, end); // "data: …"
        buffer = buffer.slice(end + 2);
        if (data === '[DONE]') ended = true;
        else {
          const delta = (JSON.parse(data) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]
            ?.delta?.content;
          if (delta) out += sse({ type: 'text-delta', id: '0', delta });
        }
      }
      if (ended) res.end(out + END);
      else if (out) res.write(out);
    }
    if (!ended) res.end(END);
  } catch (error) {
    res.destroy(error as Error);
  }
});
// The proxy's listen backlog (server/lifecycle.ts), so that a burst costs both the same in dropped handshakes.
server.listen({ port: 0, host: '127.0.0.1', backlog: 4_096 }, () => {
  console.log(`floor listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
