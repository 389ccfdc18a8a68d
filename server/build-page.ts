import { writeStaticPage } from './chat-page';

/**
 * `npm run build`, second half: the chat page as static files in public/, which Vercel serves next to the api/
 * function (vercel.json `outputDirectory`). The Node server does not need them: it bundles the page itself.
 */
const files = await writeStaticPage('public');
console.log(`Wrote the chat page: ${files.join(', ')}`);
