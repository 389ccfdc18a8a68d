import { afterAll } from 'vitest';
import { tcpRedis } from '../../server/redis-tcp';
import { REDIS_TEST_URL } from './redis';
import { startUpstashBridge, type UpstashBridge } from './upstash-bridge';

/** The Upstash REST bridge for this test file: started as the file loads, closed after its last test. */
export async function upstashBridgeForFile(): Promise<UpstashBridge> {
  const bridge = await startUpstashBridge();
  afterAll(() => bridge.close());
  return bridge;
}

/** A TCP connection to the test Redis for this test file, closed after its last test. */
export function tcpRedisForFile(timeoutMs: number): ReturnType<typeof tcpRedis> {
  const connection = tcpRedis(REDIS_TEST_URL, timeoutMs);
  afterAll(() => connection.close());
  return connection;
}
