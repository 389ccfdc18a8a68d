import type { Attachments } from './attachments';

/**
 * The images picked for the next message, each with a remove button, and why anything picked was left out. Shown
 * above the input, so what will be sent is seen before it is.
 */
export function Previews({ attachments }: { readonly attachments: Attachments }) {
  const { list, notice, remove } = attachments;
  if (!list.length && !notice) return null;
  return (
    <div className="previews">
      {list.length > 0 && (
        <ul aria-label="Images to send">
          {list.map((image) => (
            <li key={image.id}>
              <img src={image.url} alt={image.filename ?? 'image'} title={image.filename} />
              <button
                type="button"
                className="remove"
                aria-label={`Remove ${image.filename ?? 'image'}`}
                onClick={() => remove(image.id)}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      {notice && (
        <p id="attach-notice" role="status">
          {notice}
        </p>
      )}
    </div>
  );
}
