import net from 'node:net';

/**
 * The peer gateway: Portkey's open-source AI Gateway (`@portkey-ai/gateway` 1.15.2), as `npx @portkey-ai/gateway`
 * starts it, asked for OpenAI through its custom host (the fake upstream). Two things make it run here: `overrides` in
 * package.json pin `@hono/node-server` 1.13.5 and `@hono/node-ws` 1.2.0 (newer ones answer its streams with 500s,
 * `TypeError: immutable`), and this launcher binds its listener to 127.0.0.1 (it listens on every interface) on a
 * free port, and says which, since the gateway itself prints only the port it was asked for.
 */
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
  const callback = args.find((arg): arg is () => void => typeof arg === 'function');
  this.once('listening', () => {
    const address = this.address();
    if (address && typeof address === 'object')
      console.log(`portkey listening on http://127.0.0.1:${address.port}`);
  });
  return listen.call(this, { port: 0, host: '127.0.0.1' }, callback);
} as typeof listen;

process.argv.push('--port=0', '--headless');
const gateway = '@portkey-ai/gateway/build/start-server.js'; // a plain script: no types to check it against
await import(gateway);
