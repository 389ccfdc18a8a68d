import type { AttachmentMediaType, AttachmentsConfig } from '../config/attachments';
import type { ContentPart } from '../types';
import { base64Bytes } from './content';
import { sniffMediaType } from './magic-bytes';

/** A useChat `file` part (`FileUIPart`) after the envelope check: its fields are still unchecked. */
export interface UiFilePart {
  readonly mediaType?: unknown;
  readonly url?: unknown;
  readonly filename?: unknown;
}

/** The attachment as an OpenAI content part, or what is wrong with it and in which field. */
export type CheckedAttachment =
  | { readonly part: ContentPart; readonly field?: undefined }
  | { readonly field: 'mediaType' | 'url'; readonly message: string };

/** Enough of the file for every signature of the allowed types (a multiple of 4 base64 characters: it decodes alone). */
const SNIFF_CHARS = 16;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Checks one attachment of the message being answered and turns it into OpenAI's shape. An inline data URL must
 * declare an allowed type, stay within `MAX_ATTACHMENT_BYTES` and really be what it declares (magic bytes); an https
 * URL must be an image on an `ATTACHMENT_HOSTS` host and is passed on as it is. The proxy never fetches a URL a client
 * sent: that would let any caller make this server request addresses of their choosing (SSRF).
 */
export async function checkAttachment(
  file: UiFilePart,
  config: AttachmentsConfig,
): Promise<CheckedAttachment> {
  if (typeof file.mediaType !== 'string') return { field: 'mediaType', message: 'must be a string' };
  const declared = file.mediaType.toLowerCase();
  const mediaType = config.types.find((t) => t === declared);
  if (!mediaType) {
    const allowed = config.types.length
      ? `allowed: ${config.types.join(', ')}`
      : 'file attachments are turned off (ATTACHMENT_TYPES=none)';
    return {
      field: 'mediaType',
      message: `"${file.mediaType.slice(0, 100)}" is not accepted here (${allowed})`,
    };
  }
  if (typeof file.url !== 'string') return { field: 'url', message: 'must be a string' };
  if (file.url.startsWith('data:')) return checkInline(file.url, mediaType, filenameOf(file), config);
  return checkLink(file.url, mediaType, config);
}

async function checkInline(
  url: string,
  mediaType: AttachmentMediaType,
  filename: string,
  config: AttachmentsConfig,
): Promise<CheckedAttachment> {
  const comma = url.indexOf(',');
  const header = comma < 0 ? [] : url.slice(5, comma).toLowerCase().split(';');
  if (!header.slice(1).includes('base64')) {
    return { field: 'url', message: `must be a base64 data URL (data:${mediaType};base64,...)` };
  }
  if (header[0] !== mediaType) {
    return { field: 'url', message: `declares "${header[0]}" but the part's mediaType is "${mediaType}"` };
  }
  const data = url.slice(comma + 1);
  const bytes = base64Bytes(data);
  if (bytes > config.maxBytes) {
    return {
      field: 'url',
      message: `is too large (${bytes} bytes; at most ${config.maxBytes}, MAX_ATTACHMENT_BYTES)`,
    };
  }
  if (data.length % 4 !== 0 || !BASE64.test(data)) return { field: 'url', message: 'is not valid base64' };
  const mismatch = await contentMismatch(data, mediaType);
  if (mismatch)
    return { field: 'url', message: `does not match its declared type "${mediaType}" (${mismatch})` };
  if (mediaType.startsWith('image/')) return { part: { type: 'image_url', image_url: { url } } };
  return { part: { type: 'file', file: { filename, file_data: url } } };
}

/**
 * Why the bytes are not what the part declares, or `undefined` when they are. Images and PDFs by their signature;
 * text has none, so a text file must be UTF-8 without NUL bytes and carry no binary signature.
 */
async function contentMismatch(data: string, mediaType: AttachmentMediaType): Promise<string | undefined> {
  const head = decodeBase64(data.slice(0, SNIFF_CHARS));
  const found = sniffMediaType(head);
  if (mediaType !== 'text/plain') {
    if (found === mediaType) return undefined;
    return found ? `its content is ${found}` : `its content is not a ${mediaType} file`;
  }
  if (found) return `its content is ${found}`;
  const bytes = decodeBase64(data);
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return text.includes('\0') ? 'its content is binary, not text' : undefined;
  } catch {
    return 'its content is not UTF-8 text';
  }
}

function checkLink(
  url: string,
  mediaType: AttachmentMediaType,
  config: AttachmentsConfig,
): CheckedAttachment {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { field: 'url', message: 'must be a data URL or an https URL' };
  }
  if (parsed.protocol !== 'https:') return { field: 'url', message: 'must be a data URL or an https URL' };
  if (!mediaType.startsWith('image/')) {
    // OpenAI takes a PDF or text file only inline; fetching it ourselves is exactly what the proxy never does.
    return {
      field: 'url',
      message: `must be a data URL: only images may be sent as a link, not ${mediaType}`,
    };
  }
  const host = parsed.hostname.toLowerCase();
  if (!config.hosts.includes(host) || parsed.username || parsed.password || parsed.port) {
    const hosts = config.hosts.length ? config.hosts.join(', ') : 'none';
    return {
      field: 'url',
      message: `is on a host whose links are not accepted (ATTACHMENT_HOSTS: ${hosts}); send the image itself instead`,
    };
  }
  return { part: { type: 'image_url', image_url: { url: parsed.href } } };
}

/** OpenAI wants a file name with inline file data; useChat sends the picked file's, else a neutral one. */
function filenameOf(file: UiFilePart): string {
  if (typeof file.filename === 'string' && file.filename.trim() && file.filename.length <= 255)
    return file.filename;
  return 'attachment';
}

/** base64 to bytes with `atob` (the edge has no Buffer). */
function decodeBase64(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
