// @ts-check
// The routes of the HTTP API the dashboard calls, one function each. Their types are the
// very zod schemas the API validates and documents with (apps/api/src/http/schemas.ts),
// named in JSDoc only: the browser loads none of it, and a renamed field breaks
// `npm run typecheck` rather than a page. Views call these, never `api()` with a path.
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

const seg = encodeURIComponent;

/**
 * The server answers with what its schema says; this only names that type for `tsc`.
 * @template T
 * @param {Promise<unknown>} answer
 * @returns {Promise<T>}
 */
const as = (answer) => /** @type {Promise<T>} */ (answer);

/** GET /tools @returns {Promise<Tool[]>} */
export const listTools = () => as(api('GET', '/tools'));

/**
 * PUT /tools/{name}: creates the tool, or a new version when the spec changed.
 * @param {string} name
 * @param {ToolSpec} spec
 * @returns {Promise<Tool>}
 */
export const putTool = (name, spec) => as(api('PUT', `/tools/${seg(name)}`, spec));

/**
 * GET /tools/{name}/deployment (404 while the tool was never scaled).
 * @param {string} name
 * @returns {Promise<Deployment>}
 */
export const getDeployment = (name) => as(api('GET', `/tools/${seg(name)}/deployment`));

/**
 * PUT /tools/{name}/deployment
 * @param {string} name
 * @param {DeploymentRequest} body
 * @returns {Promise<Deployment>}
 */
export const putDeployment = (name, body) => as(api('PUT', `/tools/${seg(name)}/deployment`, body));

/**
 * GET /hosts, with the session's token unless another one is given (signing in tries it).
 * @param {string} [token]
 * @returns {Promise<Host[]>}
 */
export const listHosts = (token) => as(api('GET', '/hosts', undefined, token));

/**
 * GET /instances, optionally only those of one tool or host.
 * @param {InstanceFilter} [filter]
 * @returns {Promise<Instance[]>}
 */
export function listInstances(filter = {}) {
  const q = new URLSearchParams();
  if (filter.tool) q.set('tool', filter.tool);
  if (filter.host) q.set('host', filter.host);
  const qs = q.toString();
  return as(api('GET', qs ? `/instances?${qs}` : '/instances'));
}

/**
 * POST /tools/{name}/invoke with `wait: true`: runs the tool once and answers when it finished.
 * @param {string} name
 * @param {InvokeRequest} body
 * @returns {Promise<Invocation>}
 */
export const invoke = (name, body) => as(api('POST', `/tools/${seg(name)}/invoke`, { ...body, wait: true }));

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
    pathFor: () => (after === null ? '/events?follow=true&limit=50' : `/events?follow=true&after=${after}`),
    onMessage: (m) => {
      if (m.event === 'ping' || !m.data) return;
      /** @type {ApiEvent} */
      const e = JSON.parse(m.data);
      after = e.id;
      onEvent(e);
    },
  });
}
