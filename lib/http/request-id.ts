/** Safe to echo into a header and a log line: no spaces, quotes, control characters or injection room. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a caller's `x-request-id` (so traces line up across hops) when it is sane; otherwise mints one. */
export function requestIdFrom(req: Request, newId: () => string): string {
  const incoming = req.headers.get('x-request-id');
  return incoming && SANE_ID.test(incoming) ? incoming : newId();
}
