# The MACHETE image: control plane (`serve`) and agent (`agent`) from one image, run as
# TypeScript through tsx (a runtime dependency here: there is no build step).
#   docker build -t machete:local .        (compose/docker-compose.yml builds it too)
FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts stay off, as in CI: no runtime dependency needs one.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
# Code and dependencies belong to root and are read-only for the process (user `node`, uid 1000).
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY protocol ./protocol
COPY db ./db
COPY agent ./agent
COPY apps ./apps
# The one writable place (a volume in compose): admin.token for `serve`, the host credential for `agent`.
RUN install -d -o node -g node -m 0700 /var/lib/machete
USER node
ENV MACHETE_DATA_DIR=/var/lib/machete
EXPOSE 8090
ENTRYPOINT ["node", "bin/machete.mjs"]
CMD ["serve"]
