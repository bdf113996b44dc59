# bxchange server image. Not built on the development machines (no Docker
# engine there); kept simple: build stage compiles TypeScript, final stage
# carries only production dependencies and the compiled code.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 BXCHANGE_DATA_DIR=/var/lib/bxchange BXCHANGE_CERTS_DIR=/etc/bxchange/certs
WORKDIR /app
COPY package.json package-lock.json ./
# The node@24 dev dependency is not installed here: the base image is Node 24.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
COPY bin ./bin
RUN mkdir -p /var/lib/bxchange /etc/bxchange/certs && chown -R node:node /var/lib/bxchange /etc/bxchange
USER node
VOLUME ["/var/lib/bxchange", "/etc/bxchange/certs"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# The server's Node flags (src/node-flags.ts) go on the command line: Node refuses --heap-growing-percent in NODE_OPTIONS.
ENTRYPOINT ["node", "--max-semi-space-size=8", "--heap-growing-percent=300", "bin/bxchange.js"]
CMD ["serve"]
