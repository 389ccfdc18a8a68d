import type { Platform } from '../lib/create-proxy';
import { tcpRedis } from './redis-tcp';

/**
 * The Node adapter (the Vercel one is lib/platform/vercel.ts): the client IP from the socket, and a TCP client
 * for `REDIS_URL` besides Upstash REST. Background work simply runs; the process outlives the response.
 */
export const nodePlatform: Platform = {
  clientIp: socketIp,
  tcpRedis,
};

/** srvx puts the socket's remote address on the request. Behind a proxy, set CLIENT_IP_HEADER instead. */
function socketIp(req: Request): string | undefined {
  return 'ip' in req && typeof req.ip === 'string' ? req.ip : undefined;
}
