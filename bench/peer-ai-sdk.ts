import { createOpenAI } from '@ai-sdk/openai';
import { convertToModelMessages, streamText, type UIMessage } from 'ai';
import { serve } from 'srvx';

/**
 * The peer: the route handler most chat apps ship today, straight from the ai SDK docs (`streamText` with the
 * OpenAI provider, `toUIMessageStreamResponse`). No validation, limits or failover: it is the floor a gateway-less
 * app pays, so it shows what our guarantees cost.
 */
const openai = createOpenAI({ apiKey: process.env.OPENAI_API_KEY, baseURL: process.env.OPENAI_BASE_URL });

const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  silent: true,
  gracefulShutdown: false,
  fetch: async (req) => {
    const { messages } = (await req.json()) as { messages: UIMessage[] };
    const result = streamText({
      model: openai.chat('bench-model'),
      messages: await convertToModelMessages(messages),
    });
    return result.toUIMessageStreamResponse();
  },
}).ready();
console.log(`peer listening on ${server.url}`);
