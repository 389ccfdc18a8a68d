import { lastAssistantMessageIsCompleteWithToolCalls, type UIMessage } from 'ai';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../lib/config';
import type { ChatMetadata } from '../lib/types';
import { TOOLS_FILE, withFileVariable } from '../server/config-files';
import { buildHandler, chatRequest, startHarness, TEST_KEY, testConfig } from './support/harness';
import { chatLikeUseChat, userMessage } from './support/ui';

/**
 * Tools the operator declares (`TOOLS`), called by the model and run by the app: the call streams to useChat as tool
 * parts, and the app's answer comes back in the history as `tool_calls` and `tool` messages. Everything goes through
 * the public handler, the fake upstream and the ai SDK's own client.
 */
const WEATHER = {
  name: 'get_weather',
  description: 'The weather in a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const h = await startHarness({
  TOOLS: JSON.stringify([WEATHER]),
  MAX_MESSAGE_CHARS: '300',
  MAX_TOTAL_CHARS: '600',
});

type Message = UIMessage<ChatMetadata>;
type Part = Message['parts'][number];

const sentMessages = (call = 0) => h.fake.calls[call]?.body.messages ?? [];

/** The assistant's turn as useChat keeps it after the app answered the call (`addToolOutput`). */
function answeredTurn(part: Record<string, unknown>, after: Part[] = []): Message {
  const tool = {
    type: 'tool-get_weather',
    toolCallId: 'call_1',
    input: { city: 'Paris' },
    ...part,
  } as unknown as Part;
  return { id: 'a1', role: 'assistant', parts: [{ type: 'step-start' }, tool, ...after] };
}

const output = { state: 'output-available', output: { temperature: 21, sky: 'clear' } };

describe('a declared tool', () => {
  it('is sent upstream with every request, as a function', async () => {
    await chatLikeUseChat(h.handler, [userMessage('Hello')]);
    expect(h.fake.calls[0]?.body.tools).toEqual([{ type: 'function', function: WEATHER }]);
  });

  it('streams a call as a tool part with its parsed input, finishing with `tool-calls`', async () => {
    h.fake.script({ kind: 'tool-call', name: 'get_weather', arguments: '{"city": "Paris"}', id: 'call_1' });
    const ui = await chatLikeUseChat(h.handler, [userMessage('Weather in Paris?')]);
    expect(ui.errors).toEqual([]);
    const types = ui.chunks.map((c) => c.type);
    expect(types.filter((t) => t === 'tool-input-delta').length).toBeGreaterThan(1);
    expect(types.indexOf('tool-input-start')).toBeLessThan(types.indexOf('tool-input-available'));
    const tool = ui.message?.parts.find((p) => p.type === 'tool-get_weather');
    expect(tool).toMatchObject({ toolCallId: 'call_1', state: 'input-available', input: { city: 'Paris' } });
    expect(ui.message?.metadata).toMatchObject({ finishReason: 'tool-calls' });
    expect(ui.message?.metadata?.usage?.completionTokens).toBeGreaterThan(0);
  });

  it('makes a reply that is only a tool call a valid reply, logged as complete', async () => {
    h.fake.script({ kind: 'tool-call', name: 'get_weather', arguments: '{"city": "Oslo"}' });
    const ui = await chatLikeUseChat(h.handler, [userMessage('Weather in Oslo?')]);
    expect(ui.errors).toEqual([]);
    expect(ui.text).toBe('');
    expect(ui.chunks.some((c) => c.type === 'error')).toBe(false);
    expect(h.logs.at(-1)).toMatchObject({ status: 200, outcome: 'complete' });
  });

  it('turns malformed arguments into a tool-input-error, not a crash', async () => {
    h.fake.script({ kind: 'tool-call', name: 'get_weather', arguments: '{"city": "Par' });
    const ui = await chatLikeUseChat(h.handler, [userMessage('Weather?')]);
    const tool = ui.message?.parts.find((p) => p.type === 'tool-get_weather');
    expect(tool).toMatchObject({ state: 'output-error' });
    expect(ui.chunks.some((c) => c.type === 'tool-input-error')).toBe(true);
  });

  it('shows the call as a last line in plain text', async () => {
    h.fake.script({ kind: 'tool-call', name: 'get_weather', arguments: '{"city":"Rome"}' });
    const res = await h.handler(
      chatRequest(
        { messages: [{ role: 'user', content: 'Weather?' }] },
        { headers: { accept: 'text/plain' } },
      ),
    );
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('\n[tool call: get_weather {"city":"Rome"}]\n');
  });
});

describe('tool parts in the history', () => {
  it('reach the upstream as the assistant tool_calls and a tool message, and get a text answer', async () => {
    const ui = await chatLikeUseChat(h.handler, [userMessage('Weather in Paris?'), answeredTurn(output)]);
    expect(ui.errors).toEqual([]);
    expect(sentMessages().slice(1)).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature":21,"sky":"clear"}' },
    ]);
    expect(ui.text).toContain('"temperature":21');
  });

  it('send an output-error as the tool message with the error text', async () => {
    const failed = { state: 'output-error', errorText: 'Weather service down' };
    await chatLikeUseChat(h.handler, [userMessage('Weather in Paris?'), answeredTurn(failed)]);
    expect(sentMessages().at(-1)).toEqual({
      role: 'tool',
      tool_call_id: 'call_1',
      content: 'Weather service down',
    });
  });

  it('split a finished loop into its steps: calls and outputs, then the text after them', async () => {
    const turn = answeredTurn(output, [{ type: 'step-start' }, { type: 'text', text: 'It is sunny.' }]);
    await chatLikeUseChat(h.handler, [userMessage('Weather?'), turn, userMessage('Thanks', 'm2')]);
    expect(sentMessages().map((m) => m.role)).toEqual([
      'system',
      'user',
      'assistant',
      'tool',
      'assistant',
      'user',
    ]);
    expect(sentMessages()[4]).toEqual({ role: 'assistant', content: 'It is sunny.' });
  });

  it('drop (and count) calls the app did not answer, and calls to tools that are not declared', async () => {
    const unanswered = answeredTurn({ state: 'input-available' });
    const unknown = answeredTurn({ ...output, type: 'tool-launch_rockets' });
    await chatLikeUseChat(h.handler, [userMessage('Hi'), unanswered, unknown, userMessage('Again', 'm2')]);
    expect(sentMessages().map((m) => m.role)).toEqual(['system', 'user', 'user']);
    expect(h.logs.at(-1)).toMatchObject({ status: 200, dropped_parts: 2 });
  });

  it('count the tool output toward MAX_TOTAL_CHARS: an old turn is trimmed, a too-long one is refused', async () => {
    const big = { state: 'output-available', output: 'x'.repeat(290) };
    // 290 + 290 characters of output, plus the questions: over 600, so the oldest turn goes.
    const ui = await chatLikeUseChat(h.handler, [
      userMessage('First?', 'm1'),
      answeredTurn({ ...big, toolCallId: 'call_a' }),
      userMessage('Second?', 'm2'),
      answeredTurn({ ...big, toolCallId: 'call_b' }),
    ]);
    expect(ui.headers?.get('x-chat-trimmed')).toBe('3');
    expect(sentMessages().map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
    expect(sentMessages().at(-1)).toMatchObject({ tool_call_id: 'call_b' });

    const tooLong = { state: 'output-available', output: 'x'.repeat(301) };
    const res = await h.handler(
      chatRequest({
        id: 'c',
        trigger: 'submit-message',
        messages: [userMessage('Hi'), answeredTurn(tooLong)],
      }),
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: 'invalid_request', param: 'messages[1].parts[1].output' },
    });
  });
});

describe('the tool loop', () => {
  it('runs end to end: call, the app answers, the SDK sends again, the model answers in text', async () => {
    h.fake.script({ kind: 'tool-call', name: 'get_weather', arguments: '{"city":"Paris"}' });
    const messages: Message[] = [userMessage('Weather in Paris?')];
    const first = await chatLikeUseChat(h.handler, messages);
    const assistant = first.message;
    if (!assistant) throw new Error('no assistant message');
    // What useChat's `addToolOutput` does with the app's answer to `onToolCall`.
    const parts = assistant.parts.map((p) =>
      p.type === 'tool-get_weather' ? { ...p, state: 'output-available', output: { sky: 'clear' } } : p,
    ) as Part[];
    messages.push({ ...assistant, parts });
    // The SDK's own rule for `sendAutomaticallyWhen`: every call of the last step has its output.
    expect(lastAssistantMessageIsCompleteWithToolCalls({ messages })).toBe(true);
    const second = await chatLikeUseChat(h.handler, messages);
    expect(second.errors).toEqual([]);
    expect(second.text).toBe('The tool answered: {"sky":"clear"}');
    expect(second.message?.metadata?.finishReason).toBe('stop');
    // The reply continues the assistant's message, as a new step: useChat replaces the message instead of adding a
    // copy, and the loop ends, since the last step has no calls.
    expect(second.chunks[0]).toMatchObject({ type: 'start', messageId: assistant.id });
    expect(second.chunks.map((c) => c.type)).toEqual(expect.arrayContaining(['start-step', 'finish-step']));
    const continued = { ...assistant, parts: [...parts, ...(second.message?.parts ?? [])] };
    expect(
      lastAssistantMessageIsCompleteWithToolCalls({ messages: [...messages.slice(0, -1), continued] }),
    ).toBe(false);
  });
});

describe('what clients cannot do', () => {
  it('refuses a `tools` field with 400 tools_not_allowed, never calling the upstream', async () => {
    const ui = await h.handler(
      chatRequest({ messages: [{ role: 'user', content: 'Hi' }], tools: [WEATHER] }),
    );
    expect(ui.status).toBe(400);
    expect(await ui.json()).toMatchObject({
      error: {
        code: 'tools_not_allowed',
        param: 'tools',
        message: 'Tools are declared by the server: remove `tools` from the request.',
      },
    });
    expect(h.fake.calls).toHaveLength(0);
    // And through useChat's own transport, as an extra body field.
    const res = await chatLikeUseChat(h.handler, [userMessage('Hi')], { body: { tools: [WEATHER] } }).catch(
      (error: unknown) => error,
    );
    expect(String(res)).toContain('tools_not_allowed');
  });
});

describe('the TOOLS settings', () => {
  const configError = (env: Record<string, string | undefined>) => {
    try {
      loadConfig({ OPENAI_API_KEY: TEST_KEY, ...env });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('refuses bad JSON, a bad name, parameters that are not an object and a name declared twice', () => {
    expect(configError({ TOOLS: '[{"name": ' })).toMatch(/TOOLS must be a JSON array/);
    expect(configError({ TOOLS: '[{"name": "no spaces", "parameters": {}}]' })).toMatch(/TOOLS 0.name/);
    expect(configError({ TOOLS: '[{"name": "a", "parameters": "object"}]' })).toMatch(/TOOLS 0.parameters/);
    expect(
      configError({ TOOLS: '[{"name": "a", "parameters": {}}, {"name": "a", "parameters": {}}]' }),
    ).toMatch(/TOOLS declares "a" twice/);
  });

  it('reads TOOLS_FILE on the Node server, refuses it with TOOLS, and on the edge', () => {
    const withToolsFile = (env: Record<string, string>) => withFileVariable(env, TOOLS_FILE);
    expect(() => withToolsFile({ TOOLS_FILE: '/nonexistent/tools.json' })).toThrow(
      /TOOLS_FILE cannot be read/,
    );
    expect(() => withToolsFile({ TOOLS_FILE: 'tools.json', TOOLS: '[]' })).toThrow(/both set/);
    expect(configError({ TOOLS_FILE: 'tools.json' })).toMatch(/TOOLS_FILE is read by the Node server only/);
  });

  it('sends no tools when none are declared', async () => {
    const handler = buildHandler(testConfig({ OPENAI_BASE_URL: h.fake.url }));
    await chatLikeUseChat(handler, [userMessage('Hi')]);
    expect(h.fake.calls[0]?.body).not.toHaveProperty('tools');
  });
});
