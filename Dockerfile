# syntax=docker/dockerfile:1
# The Node server for Fly.io, Railway, Kubernetes or a VM:
#   docker build -t ai-chat-proxy .
#   docker run --init -p 3000:3000 -e OPENAI_API_KEY=... -e REDIS_URL=redis://... ai-chat-proxy

# Build stage: every dependency, then `npm run build` bundles server/main.ts (and lib/) into dist/server.mjs.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

# Runtime stage: production dependencies only (the bundle leaves them external), the bundle, and page/, whose
# chat.tsx the server bundles with esbuild on the first request for /chat.js.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY page ./page
# Root is not needed for anything: the server writes no files and listens on an unprivileged port.
USER node
ENV HOST=0.0.0.0 PORT=3000 NODE_OPTIONS=--enable-source-maps
EXPOSE 3000
# Node itself, since the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node, not npm: the SIGTERM from `docker stop` reaches the server itself, which drains (SHUTDOWN_GRACE_MS).
CMD ["node", "dist/server.mjs"]
