import type { FileUIPart } from 'ai';
import { useCallback, useRef, useState } from 'react';

/**
 * What the proxy accepts by default (README "Attachments": `ATTACHMENT_TYPES`, `MAX_ATTACHMENTS`,
 * `MAX_ATTACHMENT_BYTES`). Checked here too so a wrong file is refused at once, with a reason, instead of after an
 * upload the proxy would answer with a 400. The proxy stays the judge: it also checks the bytes, which this does not.
 */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'] as const;
export const MAX_IMAGES = 4;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;

/** An image picked for the next message, already a data URL: the preview shows it and useChat sends it as it is. */
export interface Attachment extends FileUIPart {
  /** For React's key and for removing it: two picks of the same file are two attachments. */
  readonly id: string;
}

export interface Attachments {
  readonly list: readonly Attachment[];
  /** Why something picked, pasted or dropped was left out; cleared by the next pick and by a send. */
  readonly notice: string | undefined;
  add(files: Iterable<File>): void;
  remove(id: string): void;
  /** Puts a message's images back, for Edit. */
  restore(parts: readonly FileUIPart[]): void;
  /** The parts to send (without the page's ids), and an empty list for the next message. */
  take(): FileUIPart[];
}

export function useAttachments(): Attachments {
  const [list, setList] = useState<readonly Attachment[]>([]);
  const [notice, setNotice] = useState<string>();
  // Reading is asynchronous: the count of what is still being read keeps a fast second pick within the limit.
  const reading = useRef(0);
  const current = useRef(list);
  current.current = list;

  const add = useCallback((files: Iterable<File>) => {
    const problems: string[] = [];
    const accepted: File[] = [];
    for (const file of files) {
      if (!(IMAGE_TYPES as readonly string[]).includes(file.type)) {
        problems.push(`${file.name} is not a PNG, JPEG, WebP or GIF image.`);
      } else if (file.size > MAX_IMAGE_BYTES) {
        problems.push(`${file.name} is larger than ${MAX_IMAGE_BYTES / 1024 / 1024} MiB.`);
      } else {
        accepted.push(file);
      }
    }
    const room = Math.max(0, MAX_IMAGES - current.current.length - reading.current);
    if (accepted.length > room) problems.push(`At most ${MAX_IMAGES} images per message.`);
    const taken = accepted.slice(0, room);
    setNotice(problems.length ? problems.join(' ') : undefined);
    if (!taken.length) return;
    reading.current += taken.length;
    void Promise.all(taken.map(toPart)).then(
      (parts) => {
        reading.current -= taken.length;
        setList((old) => [...old, ...parts]);
      },
      () => {
        reading.current -= taken.length;
        setNotice('The image could not be read.');
      },
    );
  }, []);

  const remove = useCallback((id: string) => {
    setList((old) => old.filter((a) => a.id !== id));
    setNotice(undefined);
  }, []);

  const restore = useCallback((parts: readonly FileUIPart[]) => {
    setList(parts.slice(0, MAX_IMAGES).map((part) => ({ ...part, id: nextId() })));
    setNotice(undefined);
  }, []);

  const take = useCallback(() => {
    const parts = current.current.map(({ id: _, ...part }) => part);
    setList([]);
    setNotice(undefined);
    return parts;
  }, []);

  return { list, notice, add, remove, restore, take };
}

/**
 * Not `crypto.randomUUID()`: that exists only in a secure context, and the dev server is often opened over plain
 * http from another device on the network.
 */
let lastId = 0;
const nextId = () => `attachment-${++lastId}`;

/** A file as a data URL, the form the proxy accepts inline (it never fetches a URL a client sent). */
function toPart(file: File): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      if (typeof reader.result !== 'string') return reject(new Error('not a data URL'));
      resolve({
        type: 'file',
        id: nextId(),
        mediaType: file.type,
        filename: file.name,
        url: reader.result,
      });
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
