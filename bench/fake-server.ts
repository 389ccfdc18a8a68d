import { startFakeUpstream } from '../fake-upstream';

/** The fake upstream as its own process, so the benchmark's client, proxy and upstream do not share an event loop. */
const fake = await startFakeUpstream({
  port: Number(process.env.PORT ?? 0),
  reply: () => 'The quick brown fox jumps over the lazy dog. '.repeat(4).trim(),
});
console.log(`fake upstream on ${fake.url}`);
