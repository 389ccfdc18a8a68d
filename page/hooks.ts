import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';

/** Close enough to the bottom to count as there: browsers scroll by fractions of a pixel. */
const SLACK_PX = 8;

const atBottom = () =>
  window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - SLACK_PX;

/**
 * Keeps the newest words in view while a reply streams, until the reader scrolls up to read something: then the
 * page stays put, and scrolling back to the bottom picks the reply up again. Returns `follow()`, for a send: whoever
 * sends wants to see the answer. Runs after every render, since any of them can make the page taller.
 */
export function useFollow(): () => void {
  const following = useRef(true);
  // The page's least height since the last scroll event: the bottom a scroll may have reached before the reply grew.
  const lowest = useRef(0);
  useEffect(() => {
    // Only the reader scrolls up. A scroll event comes a frame after its scroll, and the reply may have grown
    // meanwhile: judged against the page's height at the event alone, our own scroll or the reader's to the bottom
    // could read as leaving it, and following would stop for good (seen in CI under load).
    let lastY = window.scrollY;
    lowest.current = document.documentElement.scrollHeight;
    const onScroll = () => {
      const y = window.scrollY;
      if (window.innerHeight + y >= lowest.current - SLACK_PX) following.current = true;
      else if (y < lastY) following.current = false;
      lastY = y;
      lowest.current = document.documentElement.scrollHeight;
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    return () => window.removeEventListener('scroll', onScroll);
  }, []);
  useLayoutEffect(() => {
    lowest.current = Math.min(lowest.current, document.documentElement.scrollHeight);
    if (following.current && !atBottom()) window.scrollTo(0, document.documentElement.scrollHeight);
  });
  return useCallback(() => {
    following.current = true;
  }, []);
}

/**
 * What GET /api/models says: the models the server lets a client choose, the one it uses by default, and whether
 * replies can be resumed (`RESUME=on`).
 */
export interface ModelList {
  readonly models: readonly string[];
  readonly default: string;
  /** `RESUME=on`: a reply goes on when its connection drops, so the page resumes it on load and stops it by DELETE. */
  readonly resume?: boolean;
}

/**
 * The server's model list, once it has answered; `undefined` until then, and `null` where there is no such route
 * (the static page on Vercel): the page then names no model, the proxy uses its default, and resume stays off.
 */
export function useModels(): ModelList | null | undefined {
  const [list, setList] = useState<ModelList | null>();
  useEffect(() => {
    const controller = new AbortController();
    fetch('/api/models', { signal: controller.signal })
      .then((response) => (response.ok ? response.json() : undefined))
      .then((body: unknown) => setList(isModelList(body) ? body : null))
      .catch(() => {
        // No list, no picker: the chat works the same. (Aborted: the page is going, nothing to set.)
        if (!controller.signal.aborted) setList(null);
      });
    return () => controller.abort();
  }, []);
  return list;
}

function isModelList(body: unknown): body is ModelList {
  if (typeof body !== 'object' || body === null) return false;
  const { models, default: fallback, resume } = body as Record<string, unknown>;
  return (
    Array.isArray(models) &&
    models.every((m) => typeof m === 'string') &&
    typeof fallback === 'string' &&
    (resume === undefined || typeof resume === 'boolean')
  );
}
