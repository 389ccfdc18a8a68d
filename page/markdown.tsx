import { memo } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';

/**
 * Model text is untrusted, so nothing in it may act on its own: raw HTML is shown as text (react-markdown's default,
 * never `dangerouslySetInnerHTML`), `javascript:` and other unsafe URLs are dropped (its default `urlTransform`),
 * links open in a new tab without handing it this page (`noopener noreferrer`), and images are links, not
 * loads: an image URL a prompt injection wrote could otherwise carry the conversation to someone else's server.
 */
const components: Components = {
  a: ({ node: _node, href, children }) => (
    <a href={href} target="_blank" rel="noopener noreferrer">
      {children}
    </a>
  ),
  img: ({ node: _node, src, alt }) =>
    typeof src === 'string' && src ? (
      <a href={src} target="_blank" rel="noopener noreferrer">
        {alt || 'image'}
      </a>
    ) : null,
};

/**
 * Markdown, rendered again on every streamed delta: partial input is fine (an unclosed code fence is a code block up
 * to the end so far). Memoised on the text, so finished messages are not parsed again while a new one streams.
 */
export const Markdown = memo(function Markdown({ text }: { text: string }) {
  return (
    <div className="text">
      <ReactMarkdown components={components}>{text}</ReactMarkdown>
    </div>
  );
});
