/** Identifiers are cached per caller; the cache is simply dropped when it grows past this. */
const MAX_CACHED = 10_000;

/**
 * A stable, non-reversible identifier for a caller, for the provider's abuse reports (`safety_identifier`): an HMAC of
 * the caller id under a secret the provider does not know, so a flagged identifier can be traced to a caller here and
 * nowhere else. (A plain hash of an IP address could be reversed by trying all four billion of them.)
 */
export function createSafetyIdentifier(secret: string): (callerId: string) => Promise<string> {
  const key = crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(`ai-chat-proxy safety identifier\n${secret}`),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const cache = new Map<string, Promise<string>>();
  return (callerId) => {
    const known = cache.get(callerId);
    if (known) return known;
    if (cache.size >= MAX_CACHED) cache.clear();
    const id = key.then(async (k) => {
      const mac = new Uint8Array(await crypto.subtle.sign('HMAC', k, new TextEncoder().encode(callerId)));
      return `acp_${Array.from(mac.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('')}`;
    });
    cache.set(callerId, id);
    return id;
  };
}
