import { startUpstashBridge } from './upstash-bridge';

// The Upstash REST bridge as a process of its own, as Upstash is in production: a burst that keeps the proxy's
// event loop busy must not also starve the "remote" store (see tests/burst.test.ts).
const bridge = await startUpstashBridge(process.env.BRIDGE_TOKEN);
console.log(`BRIDGE ${bridge.url}`);
process.on('SIGTERM', () => void bridge.close().then(() => process.exit(0)));
// The parent holds our stdin: when it exits (even killed, without cleaning up), this ends and so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
