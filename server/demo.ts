import { startFakeUpstream } from '../fake-upstream';

/** A realistic pace: people judge a chat UI by its first token and its flow, so the demo should feel like one. */
const DEMO_PACE = { firstTokenDelayMs: 350, tokenDelayMs: 35 };

/** Starts the fake upstream on a free loopback port, speaking with a fixed, non-secret demo key. */
export async function startDemoUpstream(): Promise<{ url: string; apiKey: string }> {
  const apiKey = 'demo-key-not-secret';
  // CHAT_MODEL=demo-reasoner shows a reasoning model: its thinking streams first, then the answer.
  const reasoning = { models: /reason/, field: 'reasoning_content', strict: false } as const;
  // With TOOLS declared, a message naming a tool (say "get_time") gets a call to it: the chat page answers get_time.
  const upstream = await startFakeUpstream({ ...DEMO_PACE, apiKey, reasoning, demoTools: true });
  return { url: upstream.url, apiKey };
}
