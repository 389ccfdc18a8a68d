/** Matches API-key-like strings, including the partly starred ones that providers echo back in 401 messages. */
const KEY_LIKE = /\b(?:sk|pk|rk|gsk|key)[-_][A-Za-z0-9_*.-]{6,}/gi;

/** Removes every known secret and anything shaped like an API key from a string bound for a log line. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out.replace(KEY_LIKE, '[redacted]');
}
