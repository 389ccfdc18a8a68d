import * as z from 'zod/mini';
import { commaList, invalid, positiveInt } from './env';

/**
 * The media types an attachment may have: the ones whose content the proxy can check (by magic bytes, or as UTF-8
 * text) and that OpenAI's chat API takes as an `image_url` or a `file` part. Anything else could not be checked.
 */
export const ATTACHMENT_MEDIA_TYPES = [
  'image/png',
  'image/jpeg',
  'image/webp',
  'image/gif',
  'application/pdf',
  'text/plain',
] as const;

export type AttachmentMediaType = (typeof ATTACHMENT_MEDIA_TYPES)[number];

/** A host name as it appears in a URL: letters, digits, dots and dashes (no scheme, port or path). */
const host = z
  .string()
  .check(
    z.regex(
      /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i,
      'must list host names such as images.example.com (no scheme, port or path)',
    ),
  );

export const attachmentsEnv = z.object({
  ATTACHMENT_TYPES: z._default(commaList(z.string()), ['image/png', 'image/jpeg', 'image/webp', 'image/gif']),
  MAX_ATTACHMENTS: positiveInt(4),
  MAX_ATTACHMENT_BYTES: positiveInt(5 * 1024 * 1024),
  ATTACHMENT_HOSTS: z.optional(commaList(host)),
});

export interface AttachmentsConfig {
  /** Media types a `file` part may declare; empty: attachments are refused. */
  readonly types: readonly AttachmentMediaType[];
  /** Attachments in the message being answered. */
  readonly maxFiles: number;
  /** Decoded bytes of one inline (data URL) attachment. */
  readonly maxBytes: number;
  /** Hosts whose https URLs are passed upstream as they are (lower case); empty: inline data URLs only. */
  readonly hosts: readonly string[];
}

export function toAttachmentsConfig(e: z.output<typeof attachmentsEnv>): AttachmentsConfig {
  return {
    types: mediaTypes(e.ATTACHMENT_TYPES),
    maxFiles: e.MAX_ATTACHMENTS,
    maxBytes: e.MAX_ATTACHMENT_BYTES,
    hosts: (e.ATTACHMENT_HOSTS ?? []).map((h) => h.toLowerCase()),
  };
}

/**
 * How many body bytes attachments may add on top of `MAX_BODY_BYTES`: every allowed file at its largest, base64
 * encoded (4 bytes for every 3) with its data URL prefix. The reader stops there; the validator then holds the text
 * to `MAX_BODY_BYTES` and each file to its own caps.
 */
export function attachmentAllowance(attachments: AttachmentsConfig): number {
  if (attachments.types.length === 0) return 0;
  const perFile = Math.ceil(attachments.maxBytes / 3) * 4 + 100;
  return attachments.maxFiles * perFile;
}

function mediaTypes(listed: readonly string[]): AttachmentMediaType[] {
  if (listed.length === 1 && listed[0]?.toLowerCase() === 'none') return [];
  const types = new Set<AttachmentMediaType>();
  for (const type of listed) {
    const known = ATTACHMENT_MEDIA_TYPES.find((t) => t === type.toLowerCase());
    if (!known) {
      throw invalid(
        'ATTACHMENT_TYPES',
        `must list media types among ${ATTACHMENT_MEDIA_TYPES.join(', ')}, or be "none" (the proxy cannot check the content of any other type)`,
      );
    }
    types.add(known);
  }
  return [...types];
}
