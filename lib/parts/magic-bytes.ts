/**
 * The media type a file's first bytes say it is, among the types an attachment may have (images and PDF); text has
 * no signature. Five signatures, checked here rather than by a general detector: `file-type` knows hundreds of
 * formats, and its parsers were a seventh of the edge bundle for these five.
 */
const SIGNATURES: readonly {
  readonly mime: string;
  readonly at: number;
  readonly bytes: readonly number[];
}[] = [
  { mime: 'image/png', at: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { mime: 'image/jpeg', at: 0, bytes: [0xff, 0xd8, 0xff] },
  { mime: 'image/gif', at: 0, bytes: [...'GIF8'].map((c) => c.charCodeAt(0)) },
  { mime: 'image/webp', at: 8, bytes: [...'WEBP'].map((c) => c.charCodeAt(0)) },
  { mime: 'application/pdf', at: 0, bytes: [...'%PDF-'].map((c) => c.charCodeAt(0)) },
];

const RIFF = [...'RIFF'].map((c) => c.charCodeAt(0));

export function sniffMediaType(head: Uint8Array): string | undefined {
  const matches = (at: number, bytes: readonly number[]) => bytes.every((b, i) => head[at + i] === b);
  for (const { mime, at, bytes } of SIGNATURES) {
    if (!matches(at, bytes)) continue;
    // A GIF is GIF87a or GIF89a; a WebP is a RIFF container whose form type is WEBP.
    if (mime === 'image/gif' && !(head[5] === 0x61 && (head[4] === 0x37 || head[4] === 0x39))) continue;
    if (mime === 'image/webp' && !matches(0, RIFF)) continue;
    return mime;
  }
  return undefined;
}
