// @ts-check
// The routes of the HTTP API the dashboard calls, one function each, all through `call`,
// typed by the API's route contract and the very zod schemas the API validates and documents
// with (apps/api/src/http/contract.ts, schemas.ts), named in JSDoc only: the browser loads none
// of it, and a renamed route or field breaks `npm run typecheck` rather than a page. Views call
// these, never `api()` with a path.
import { api, followStream } from './api.js';

/** @import { z } from 'zod' */
/** @import * as S from '../../api/src/http/schemas.ts' */
/** @import { StreamState } from './api.js' */

/** @typedef {z.infer<typeof S.ToolSchema>} Tool */
/** @typedef {z.input<typeof S.ToolSpecBody>} ToolSpec */
/** @typedef {z.infer<typeof S.DeploymentSchema>} Deployment */
/** @typedef {z.input<typeof S.DeploymentBody>} DeploymentRequest */
/** @typedef {z.infer<typeof S.InstanceSchema>} Instance */
/** @typedef {z.infer<typeof S.HostSchema>} Host */
/** @typedef {z.infer<typeof S.EventSchema>} ApiEvent */
/** @typedef {z.infer<typeof S.InvocationSchema>} Invocation */
/** @typedef {Omit<z.input<typeof S.InvokeBody>, 'wait'>} InvokeRequest */
/** @typedef {{ tool?: string, host?: string }} InstanceFilter */

/** @import { JsonRoute, RouteArgs, RouteAnswer, RouteKey } from '../../api/src/http/contract.ts' */

/**
 * `'GET /tools/{name}'` with `{ params: { name } }` → `/tools/hello`, plus the query's set keys.
 * @param {RouteKey} route
 * @param {{ params?: Record<string, string>, query?: Record<string, string | number | boolean | undefined> }} args
 * @returns {[method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', path: string]}
 */
export function resolve(route, args) {
  const [method, template] = /** @type {['GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE', string]} */ (route.split(' '));
  const path = template.replace(/\{(\w+)\}/g, (_, /** @type {string} */ name) => {
    const v = args.params?.[name];
    if (v === undefined) throw new Error(`${route}: missing ${name}`);
    return encodeURIComponent(v);
  });
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(args.query ?? {})) if (v !== undefined && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return [method, qs ? `${path}?${qs}` : path];
}

/**
 * Calls one route of the API's contract (apps/api/src/http/contract.ts): a route the server
 * does not register, a missing parameter or a misnamed field is a `tsc` error, and the answer
 * has the type of the schema the server answers with.
 * @template {JsonRoute} K
 * @param {K} route
 * @param {RouteArgs<K>} args
 * @param {string | null} [token] another token than the session's (signing in tries one)
 * @returns {Promise<RouteAnswer<K>>}
 */
export function call(route, args, token) {
  const [method, path] = resolve(route, args);
  const a = /** @type {{ body?: unknown }} */ (args);
  return /** @type {Promise<RouteAnswer<K>>} */ (token === undefined ? api(method, path, a.body) : api(method, path, a.body, token));
}

/** GET /tools @returns {Promise<Tool[]>} */
export const listTools = () => call('GET /tools', {});

/**
 * PUT /tools/{name}: creates the tool, or a new version when the spec changed.
 * @param {string} name
 * @param {ToolSpec} spec
 * @returns {Promise<Tool>}
 */
export const putTool = (name, spec) => call('PUT /tools/{name}', { params: { name }, body: spec });

/**
 * GET /tools/{name}/deployment (404 while the tool was never scaled).
 * @param {string} name
 * @returns {Promise<Deployment>}
 */
export const getDeployment = (name) => call('GET /tools/{name}/deployment', { params: { name } });

/**
 * PUT /tools/{name}/deployment
 * @param {string} name
 * @param {DeploymentRequest} body
 * @returns {Promise<Deployment>}
 */
export const putDeployment = (name, body) => call('PUT /tools/{name}/deployment', { params: { name }, body });

/**
 * GET /hosts, with the session's token unless another one is given (signing in tries it).
 * @param {string} [token]
 * @returns {Promise<Host[]>}
 */
export const listHosts = (token) => call('GET /hosts', {}, token);

/**
 * GET /instances, optionally only those of one tool or host.
 * @param {InstanceFilter} [filter]
 * @returns {Promise<Instance[]>}
 */
export const listInstances = (filter = {}) => call('GET /instances', { query: { tool: filter.tool, host: filter.host } });

/**
 * POST /tools/{name}/invoke with `wait: true`: runs the tool once and answers when it finished.
 * @param {string} name
 * @param {InvokeRequest} body
 * @returns {Promise<Invocation>}
 */
export async function invoke(name, body) {
  const r = await call('POST /tools/{name}/invoke', { params: { name }, body: { ...body, wait: true } });
  // With wait: true the server answers 200 with the finished invocation, never 202 `{id}`.
  if (!('status' in r)) throw new Error('the server did not wait for the invocation');
  return r;
}

/**
 * GET /events?follow=true as server-sent events: the last 50, then each new one; after a
 * drop it resumes after the last id it saw.
 * @param {{ onEvent: (e: ApiEvent) => void, onState: (state: StreamState) => void, signal: AbortSignal }} opts
 */
export function followEvents({ onEvent, onState, signal }) {
  /** @type {number | null} */
  let after = null;
  followStream({
    signal,
    onState,
    pathFor: () => resolve('GET /events', { query: after === null ? { follow: 'true', limit: 50 } : { follow: 'true', after } })[1],
    onMessage: (m) => {
      if (m.event === 'ping' || !m.data) return;
      /** @type {ApiEvent} */
      const e = JSON.parse(m.data);
      after = e.id;
      onEvent(e);
    },
  });
}
