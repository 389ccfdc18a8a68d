import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../lib/config';
import { redisUrlParts } from '../lib/config/rate-limit';

const KEY = 'sk-config-test-0123456789';

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies sensible defaults and freezes the result', () => {
    const config = loadConfig({ OPENAI_API_KEY: KEY });
    expect(config).toMatchObject({
      apiKey: KEY,
      baseURL: undefined,
      defaultModel: 'gpt-4o-mini',
      allowedModels: ['gpt-4o-mini'],
      systemPrompt: '',
      caps: {
        maxMessages: 50,
        maxMessageChars: 8000,
        maxTotalChars: 32000,
        maxOutputTokens: 1024,
        maxBodyBytes: 262144,
        bodyTimeoutMs: 10000,
      },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.caps)).toBe(true);
    expect(Object.isFrozen(config.allowedModels)).toBe(true);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: 'https://api.groq.com/openai/v1/',
      CHAT_MODEL: 'llama-3.1-8b-instant',
      ALLOWED_MODELS: 'llama-3.1-8b-instant, llama-3.3-70b-versatile',
      SYSTEM_PROMPT: '  Be brief.  ',
      MAX_MESSAGES: '10',
      MAX_MESSAGE_CHARS: '500',
      MAX_TOTAL_CHARS: '2000',
      MAX_OUTPUT_TOKENS: '256',
      MAX_BODY_BYTES: '65536',
      BODY_TIMEOUT_MS: '5000',
    });
    expect(config.baseURL).toBe('https://api.groq.com/openai/v1');
    expect(config.allowedModels).toEqual(['llama-3.1-8b-instant', 'llama-3.3-70b-versatile']);
    expect(config.systemPrompt).toBe('Be brief.');
    expect(config.caps).toEqual({
      maxMessages: 10,
      maxMessageChars: 500,
      maxTotalChars: 2000,
      maxOutputTokens: 256,
      maxBodyBytes: 65536,
      bodyTimeoutMs: 5000,
    });
  });

  it('refuses a MAX_INPUT_TOKENS that the system prompt and the tools alone fill, naming both', () => {
    const tools = JSON.stringify([{ name: 'lookup', description: 'x'.repeat(400), parameters: {} }]);
    const env = { OPENAI_API_KEY: KEY, SYSTEM_PROMPT: 'Be brief.', MAX_INPUT_TOKENS: '100' };
    expect(loadConfig(env).history.maxInputTokens).toBe(100);
    expect(configError({ ...env, TOOLS: tools })).toMatch(
      /MAX_INPUT_TOKENS must leave room for the conversation: SYSTEM_PROMPT and TOOLS alone are about \d+ tokens/,
    );
  });

  it('treats an empty value as unset', () => {
    expect(loadConfig({ OPENAI_API_KEY: KEY, OPENAI_BASE_URL: '', CHAT_MODEL: ' ' }).defaultModel).toBe(
      'gpt-4o-mini',
    );
  });

  it('names a missing key', () => {
    expect(configError({})).toMatch(/OPENAI_API_KEY is required/);
  });

  it('names every bad variable, without echoing values', () => {
    const message = configError({
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: 'ftp://nope',
      MAX_MESSAGES: 'lots',
      MAX_OUTPUT_TOKENS: '-5',
      CHAT_MODEL: 'bad model name',
    });
    expect(message).toMatch(/OPENAI_BASE_URL must be an http\(s\) URL/);
    expect(message).toMatch(/MAX_MESSAGES must be a whole number/);
    expect(message).toMatch(/MAX_OUTPUT_TOKENS must be greater than 0/);
    expect(message).toMatch(/CHAT_MODEL may only contain/);
    expect(message).not.toContain(KEY);
    expect(message).not.toContain('lots');
  });

  it('refuses a REDIS_URL the connection could not read, without echoing it', () => {
    for (const url of [
      'redis://:50%off@127.0.0.1:6379',
      'redis://127.0.0.1:6379/zero',
      'http://127.0.0.1:6379',
      'redis://127.0.0.1:6379?db=two',
      'redis://127.0.0.1:6379/1?db=2',
      'rediss://127.0.0.1:6379?ssl_cert_reqs=none', // would be ignored: refused instead
    ]) {
      const message = configError({ OPENAI_API_KEY: KEY, REDIS_URL: url });
      expect(message).toMatch(/REDIS_URL must/);
      expect(message).not.toContain('50%off');
    }
    for (const url of [
      'redis://127.0.0.1:6379',
      'rediss://default:p%25ss@redis.example:6380/2',
      'redis://h/',
      'redis://h:6379/3?db=3&family=6',
    ]) {
      expect(loadConfig({ OPENAI_API_KEY: KEY, REDIS_URL: url }).rateLimit.store).toMatchObject({ url });
    }
    // The query parameters ioredis read: db and password (decoded), family (the connection picks the family itself).
    expect(redisUrlParts(new URL('redis://h?db=4&password=p%25ss&family=0'))).toEqual({
      username: undefined,
      password: 'p%ss',
      db: 4,
    });
    expect(redisUrlParts(new URL('redis://u:from-url@h/2?password=other'))).toMatchObject({
      password: 'from-url',
      db: 2,
    });
    expect(() => redisUrlParts(new URL('redis://h?tls=1'))).toThrow(/may only hold db, password and family/);
    expect(() => redisUrlParts(new URL('redis://h?db=x&db=2'))).toThrow(/names db twice/);
    expect(() => redisUrlParts(new URL('redis://h?db=&db=2'))).toThrow(/names db twice/);
    expect(redisUrlParts(new URL('redis://h/2?db=&password='))).toEqual({
      username: undefined,
      password: undefined,
      db: 2,
    });
  });

  it('refuses a default model outside the allowlist', () => {
    expect(configError({ OPENAI_API_KEY: KEY, CHAT_MODEL: 'a', ALLOWED_MODELS: 'b,c' })).toMatch(
      /CHAT_MODEL "a" must be one of ALLOWED_MODELS/,
    );
  });
});
