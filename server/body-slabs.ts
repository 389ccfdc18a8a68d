/**
 * The upstream request bodies' bytes, cut from slabs that hold nothing else. undici turns a string body into
 * `Buffer.from(body)`, a slice of Node's shared 8 KB pool, and keeps it until the reply has ended; the pool's other
 * slices (the proxy's short-lived buffers) are dead long before, but the slab lives as long as its longest slice.
 * In a heap snapshot of 500 open streams, that was an 8 KB slab for every two streams (4 KB a stream). Here a slab
 * holds only bodies, which live about as long as each other: a dense burst shares slabs (20 bodies of 400 bytes in
 * one), and a lone long stream pins no more than it did from Node's pool, one slab of the same size. A body too large
 * to share gets bytes of its own, past the same size as `Buffer.from`'s own rule (half a slab).
 */
export const SLAB_BYTES = 8 * 1024;
export const LARGEST_SHARED = SLAB_BYTES / 2;

export function bodySlabs(): (text: string) => Buffer {
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  let used = 0;
  return (text) => {
    const size = Buffer.byteLength(text);
    if (size > LARGEST_SHARED) return Buffer.from(text);
    if (used + size > SLAB_BYTES) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      used = 0;
    }
    const start = used;
    slab.write(text, start);
    used = (start + size + 7) & ~7; // each body 8-aligned, as in Node's own pool
    return slab.subarray(start, start + size);
  };
}
