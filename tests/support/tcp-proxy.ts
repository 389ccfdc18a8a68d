import type { AddressInfo } from 'node:net';
import { createServer, Socket } from 'node:net';

export interface TcpProxy {
  /** `redis://127.0.0.1:<port>`: point REDIS_URL here instead of at Redis itself. */
  readonly url: string;
  /** Redis "goes down": every open connection is cut and new ones are refused. */
  stop(): Promise<void>;
}

/** A loopback TCP forwarder in front of the real redis-server, so a test can take "Redis" away mid-burst. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
