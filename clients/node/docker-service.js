// @ts-check
/**
 * docker-service.js: Drape's previews on the Hetzner fleet, for the Node backend. A drop-in for fly-service.js:
 * the same method names for the same jobs (create, start, stop, remove, status, wait), so phase 2 of the
 * migration is an import change in workspace-orchestrator.js:
 *
 *   import { DockerService } from './docker-service.js';   // was: import { FlyService } from './fly-service.js'
 *   const previews = new DockerService({
 *     baseUrls: process.env.DRAPE_RUNTIME_URLS.split(','),  // every instance: https://<host>:443
 *     token: process.env.DRAPE_RUNTIME_TOKEN,
 *   });
 *   const preview = await previews.create({ workspace: 'ws-42', user: 'u-7', framework: 'nextjs' });
 *   await previews.wait(preview.id, { state: 'started', onPhase: (p) => ui.progress(p.phase) });
 *   proxyTo(preview.url);
 *
 * It talks to the runtime service (drape-runtime, docs/service.md) over HTTPS with a bearer token. No
 * dependency: Node's own fetch (Node >= 20). Machines there, previews here: a preview is addressed by its
 * workspace id (`preview.id === preview.workspace`), and `preview.state` maps its phase onto a Fly machine's
 * states for code that reads those.
 *
 * An instance that dies while it places a preview leaves only a claim behind (the runtime reaps it after its claim
 * timeout); `wait()` then hears "no preview" from the next instance, and sends the start again (it is idempotent)
 * when this client made the preview and failed over since: the request is not lost, only delayed.
 *
 * Retries: only what is safe to send again. Every call of the API is idempotent except starting a drain (it
 * runs on the instance that got it), so those calls fail over to the next base URL on a connection error, a
 * timeout, or a gateway answer (502/503/504 from the ingress while its instance restarts); a drain, a failed
 * placement and a measured start (the routing questions that record something) are sent again only when the
 * connection failed before the request left (refused, unreachable, no route). A 429 waits for
 * Retry-After. The runtime's own answers (400, 404, 409, queue full, host unavailable) are not retried: they
 * are errors with a code, the field at fault and the fix (`DockerServiceError`).
 */

/** @typedef {'queued'|'placing'|'starting'|'installing'|'compiling'|'ready'|'failed'|'lost'} Phase */
/** @typedef {'created'|'starting'|'started'|'failed'|'destroyed'} MachineState  Fly's names for the phases */

/**
 * @typedef {Object} Resources
 * @property {number} [cpus]         nominal cores (CPU weight; bursts to the idle host)
 * @property {number} [cpu_limit]    hard ceiling in cores
 * @property {number} [memory_mib]
 * @property {number} [pids_limit]
 * @property {number} [disk_gib]
 * @property {number} [tmp_mib]
 */

/**
 * @typedef {Object} PreviewSpec
 * @property {string} workspace      the workspace id: one preview per workspace
 * @property {string} user           the user it belongs to (another user's workspace is a 409)
 * @property {string} framework      a template of the fleet (nextjs, react, vue...; a 400 lists them)
 * @property {string} [project]      default: the workspace
 * @property {string} [repo]         https:// or git@host:path
 * @property {string} [ref]          branch, tag or commit
 * @property {Record<string,string>} [env]
 * @property {Resources} [resources] default: the framework's size
 * @property {string} [repo_token]   a short-lived read-only token to clone `repo` with (never stored with the
 *                                   preview; this client keeps it in memory to start the preview again)
 */

/**
 * @typedef {Object} Preview
 * @property {string} id              the workspace id (what Fly code calls the machine id)
 * @property {string} workspace
 * @property {string} user
 * @property {string} project
 * @property {string} framework
 * @property {Phase} phase
 * @property {MachineState} state     the phase in Fly's terms
 * @property {boolean} ready
 * @property {boolean} final          ready, failed or lost: it will not move by itself
 * @property {string} since           ISO time the phase began
 * @property {string|null} host
 * @property {string|null} container_id
 * @property {string|null} url        where to proxy the preview, once it has a port
 * @property {number|null} queue_position  1 = next, while queued
 * @property {number|null} waited_s
 * @property {string|null} error      why, when failed or lost
 */

/**
 * @typedef {Object} Stopped
 * @property {string} workspace
 * @property {boolean} stopped        false when there was no preview (stopping is idempotent)
 * @property {string[]} pending_hosts hosts that did not answer: the stop is applied when they answer again
 */

/**
 * @typedef {Object} RetryInfo
 * @property {string} method
 * @property {string} path
 * @property {string} from            the base URL that failed
 * @property {string} to              the base URL tried next
 * @property {number} attempt
 * @property {string} reason
 */

/**
 * @typedef {Object} DockerServiceOptions
 * @property {string[]} baseUrls      every instance, e.g. ['https://203.0.113.11', 'https://203.0.113.12']
 * @property {string} token           a bearer token of this caller (invoke service.token --caller backend)
 * @property {number} [timeoutMs]     per request (default 15000; long-polls add their own wait)
 * @property {number} [attempts]      sends of one call at most, across instances (default: 2 per instance, >= 3)
 * @property {number} [maxRetryAfterMs]  the longest a 429 is waited out before giving up (default 5000)
 * @property {number|'random'} [first]  the instance to use first (default 'random': backend processes spread out)
 * @property {typeof fetch} [fetch]
 * @property {(info: RetryInfo) => void} [onRetry]
 */

const FLY_STATE = /** @type {Record<Phase, MachineState>} */ ({
  queued: 'created', placing: 'created', starting: 'starting', installing: 'starting', compiling: 'starting',
  ready: 'started', failed: 'failed', lost: 'failed',
});
const LONG_POLL_S = 25;
const REMEMBERED_SPECS = 10000;
/** Connection errors that mean the request never left: safe to send again, even when not idempotent. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT']);
/** The runtime's own 503s: a full fleet or a down host is the same on every instance. */
const FINAL_503 = new Set(['queue_full', 'host_unavailable']);

/** The phase as a Fly machine state. @param {Phase} phase @returns {MachineState} */
export function stateOf(phase) {
  return FLY_STATE[phase];
}

/** An answer of the service that is not a success, or a call that could not be made. */
export class DockerServiceError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, field?: string|null, fix?: string|null, known?: string[]|null,
   *          retryAfterMs?: number|null, url?: string, preview?: Preview|null, cause?: unknown}} [details]
   */
  constructor(message, details = {}) {
    super(message, { cause: details.cause });
    this.name = 'DockerServiceError';
    /** HTTP status; 0 when no instance answered */
    this.status = details.status ?? 0;
    /** stable code: unauthorized, invalid_request, bad_request, unknown_framework, not_found, workspace_conflict,
     * queue_full, rate_limited, host_unavailable, preview_failed, timeout, unreachable, ... */
    this.code = details.code ?? 'error';
    this.field = details.field ?? null;
    this.fix = details.fix ?? null;
    this.known = details.known ?? null;
    this.retryAfterMs = details.retryAfterMs ?? null;
    this.url = details.url ?? null;
    this.preview = details.preview ?? null;
  }
}

export class DockerService {
  /** @param {DockerServiceOptions} options */
  constructor(options) {
    const { baseUrls, token } = options;
    if (!Array.isArray(baseUrls) || baseUrls.length === 0) {
      throw new TypeError('baseUrls: give at least one instance URL, e.g. https://203.0.113.11');
    }
    if (!token) throw new TypeError('token: give the bearer token issued for this caller');
    this.baseUrls = baseUrls.map((url) => url.replace(/\/+$/, ''));
    this.timeoutMs = options.timeoutMs ?? 15000;
    this.attempts = options.attempts ?? Math.max(3, 2 * this.baseUrls.length);
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 5000;
    this.onRetry = options.onRetry ?? (() => {});
    this.fetch = options.fetch ?? globalThis.fetch;
    /** @type {string} */
    this.authorization = `Bearer ${token}`;
    /** The instance that answered last: calls stick to it until it fails. */
    this.current = options.first === undefined || options.first === 'random'
      ? Math.floor(Math.random() * this.baseUrls.length) : options.first % this.baseUrls.length;
    /** How many times a call moved on to another instance. */
    this.failovers = 0;
    /** @type {Map<string, PreviewSpec>} the specs this client started, to start again after a failover */
    this.specs = new Map();
  }

  // -- the names fly-service.js has --------------------------------------------------------------------------

  /**
   * Start the workspace's preview, or get the one it has (Fly: create a machine). Answers at once unless
   * `waitMs` asks to hold the answer until ready (up to the service's long-poll limit).
   * @param {PreviewSpec} spec @param {{waitMs?: number}} [options] @returns {Promise<Preview>}
   */
  async create(spec, options = {}) {
    const { workspace, ...body } = spec;
    this.#remember(spec);
    const waitS = options.waitMs ? Math.min(options.waitMs / 1000, 120) : undefined;
    return this.#preview(await this.#call('PUT', `/v1/previews/${enc(workspace)}`, {
      body: { ...body, wait_s: waitS }, timeoutMs: this.timeoutMs + (waitS ?? 0) * 1000,
    }));
  }

  /** Same as create: start it, or get it (a hot start answers ready at once). Fly: start a stopped machine.
   * @param {PreviewSpec} spec @param {{waitMs?: number}} [options] @returns {Promise<Preview>} */
  async start(spec, options = {}) {
    return this.create(spec, options);
  }

  /** Stop and remove the workspace's preview. Idempotent: `stopped` is false when there was none.
   * `pending_hosts`: hosts that did not answer, where the stop is applied once they answer again.
   * @param {string} workspace @returns {Promise<Stopped>} */
  async stop(workspace) {
    this.specs.delete(workspace);
    return /** @type {Stopped} */ (
      await this.#call('DELETE', `/v1/previews/${enc(workspace)}`));
  }

  /** Fly: destroy. Here stop already removes (a preview is kept alive only by activity), so it is stop.
   * @param {string} workspace @returns {Promise<Stopped>} */
  async remove(workspace) {
    return this.stop(workspace);
  }

  /** The workspace's preview, or null when it has none. @param {string} workspace @returns {Promise<Preview|null>} */
  async status(workspace) {
    try {
      return this.#preview(await this.#call('GET', `/v1/previews/${enc(workspace)}`));
    } catch (error) {
      if (error instanceof DockerServiceError && error.code === 'not_found') return null;
      throw error;
    }
  }

  /**
   * Wait until the preview is ready (Fly: wait for state 'started'), following its phases with long-polls.
   * A preview this client started whose host died (`lost`) is started again, once per wait: the runtime places
   * it on another host. Rejects with code 'preview_failed' when it fails (or is lost again), 'timeout' after
   * `timeoutMs`.
   * @param {string} workspace
   * @param {{state?: 'started'|'ready', timeoutMs?: number, onPhase?: (preview: Preview) => void}} [options]
   * @returns {Promise<Preview>}
   */
  async wait(workspace, options = {}) {
    const deadline = Date.now() + (options.timeoutMs ?? 600000);
    /** @type {Phase|undefined} */
    let after;
    let failovers = this.failovers;
    let restartedLost = false;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new DockerServiceError(`${workspace}: not ready within ${options.timeoutMs ?? 600000} ms`,
          { code: 'timeout', fix: 'wait again, or look at status(): it may still be installing' });
      }
      const timeoutS = Math.max(1, Math.min(LONG_POLL_S, Math.floor(left / 1000)));
      const query = `?timeout_s=${timeoutS}${after ? `&after=${after}` : ''}`;
      /** @type {Preview} */
      let preview;
      try {
        preview = this.#preview(await this.#call('GET', `/v1/previews/${enc(workspace)}/wait${query}`, {
          timeoutMs: this.timeoutMs + timeoutS * 1000,
        }));
      } catch (error) {
        const spec = this.specs.get(workspace);
        const movedOn = this.failovers > failovers;
        if (!(error instanceof DockerServiceError && error.code === 'not_found' && spec && movedOn)) throw error;
        failovers = this.failovers;  // the instance that had it died placing it: start it again, once per failover
        preview = await this.create(spec);
      }
      if (preview.phase !== after) options.onPhase?.(preview);
      after = preview.phase;
      if (preview.ready) return preview;
      const spec = this.specs.get(workspace);
      if (preview.phase === 'lost' && spec && !restartedLost) {
        restartedLost = true;  // its host died: the start goes to a host that answers
        preview = await this.create(spec);
        if (preview.phase !== after) options.onPhase?.(preview);
        after = preview.phase;
        if (preview.ready) return preview;
      }
      if (preview.final) {
        throw new DockerServiceError(`${workspace}: ${preview.phase}: ${preview.error ?? 'no reason given'}`,
          { code: 'preview_failed', preview, fix: 'start it again (a lost preview is placed on another host)' });
      }
    }
  }

  // -- what the runtime adds -------------------------------------------------------------------------------

  /** The user opened the project: prepare its preview now (never queues). @param {PreviewSpec} spec
   * @returns {Promise<Preview>} */
  async prewarm(spec) {
    const { workspace, ...body } = spec;
    this.#remember(spec);
    return this.#preview(await this.#call('PUT', `/v1/previews/${enc(workspace)}/prewarm`, { body }));
  }

  /** The user is still here: the preview lives on 30 minutes after the last call. @param {string} workspace */
  async activity(workspace) {
    await this.#call('POST', `/v1/previews/${enc(workspace)}/activity`);
  }

  /** Every preview on the fleet. @returns {Promise<Preview[]>} */
  async list() {
    const answer = /** @type {{previews: object[]}} */ (await this.#call('GET', '/v1/previews'));
    return answer.previews.map((p) => this.#preview(p));
  }

  /** The hosts: capacity, health, cordon (a token with the 'fleet' scope). @returns {Promise<object[]>} */
  async hosts() {
    return /** @type {{hosts: object[]}} */ (await this.#call('GET', '/v1/hosts')).hosts;
  }

  /** @param {string} host @param {string} [reason] */
  async cordon(host, reason = '') {
    return this.#call('POST', `/v1/hosts/${enc(host)}/cordon`, { body: { reason } });
  }

  /** @param {string} host */
  async uncordon(host) {
    return this.#call('POST', `/v1/hosts/${enc(host)}/uncordon`, { body: {} });
  }

  /** Start draining a host on one instance (not sent again to another: it would start a second drain).
   * @param {string} host @param {{idleS?: number, deadlineS?: number}} [options] */
  async drain(host, options = {}) {
    return this.#call('POST', `/v1/hosts/${enc(host)}/drain`, {
      body: { idle_s: options.idleS ?? 300, deadline_s: options.deadlineS ?? 1800 }, idempotent: false,
    });
  }

  // -- the cutover's routing questions (docs/cutover.md) -----------------------------------------------------

  /** Where `user`'s preview goes now (`provider`: 'hetzner' or 'fly', `reason`, `phase`, `features`...); with
   * `workspace`, a preview of it still running on Hetzner keeps it there.
   * @param {string} user @param {string} [workspace] @returns {Promise<Record<string, unknown>>} */
  async route(user, workspace) {
    const query = new URLSearchParams(workspace ? { user, workspace } : { user });
    return /** @type {Record<string, unknown>} */ (await this.#call('GET', `/v1/routing/route?${query}`));
  }

  /** A Hetzner placement failed: recorded (once: not sent again once it reached an instance), and the answer is
   * where to go now (Fly while the phase keeps it as the fallback).
   * @param {{user: string, reason: string, kind?: 'cold'|'warm'|'prewarmed'|'hot', workspace?: string}} failure
   * @returns {Promise<Record<string, unknown>>} */
  async placementFailed(failure) {
    return /** @type {Record<string, unknown>} */ (
      await this.#call('POST', '/v1/routing/placement-failed', { body: failure, idempotent: false }));
  }

  /** A start this process measured, request to ready (Fly's starts reach the cutover's report only this way).
   * Recorded once: not sent again once it reached an instance.
   * @param {{provider: 'hetzner'|'fly', kind: 'cold'|'warm'|'prewarmed'|'hot', seconds: number, ok?: boolean,
   *          reason?: string, phase?: number}} report */
  async recordStart(report) {
    return this.#call('POST', '/v1/routing/starts', { body: report, idempotent: false });
  }

  /** The routing policy in force (its phase, generation and counts; the user lists stay with ops). */
  async routingPolicy() {
    return this.#call('GET', '/v1/routing/policy');
  }

  // -- one call, with failover ---------------------------------------------------------------------------

  /**
   * @param {string} method @param {string} path
   * @param {{body?: object, idempotent?: boolean, timeoutMs?: number}} [options]
   * @returns {Promise<any>}
   */
  async #call(method, path, options = {}) {
    const idempotent = options.idempotent ?? true;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    /** @type {DockerServiceError|undefined} */
    let last;
    for (let attempt = 1; attempt <= this.attempts; attempt += 1) {
      const index = this.current;
      const base = this.baseUrls[index];
      /** @type {string|undefined} why this attempt may be sent again elsewhere */
      let retry;
      let waitMs = 0;
      try {
        const response = await this.fetch(base + path, {
          method,
          body,
          headers: { Authorization: this.authorization, Accept: 'application/json',
            ...(body ? { 'Content-Type': 'application/json' } : {}) },
          signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs),
        });
        if (response.ok) {
          return response.status === 204 ? null : await response.json();
        }
        const error = await errorOf(response, base);
        last = error;
        if (response.status === 429 && error.retryAfterMs !== null && error.retryAfterMs <= this.maxRetryAfterMs) {
          retry = 'rate limited';
          waitMs = error.retryAfterMs;
        } else if (idempotent && [502, 503, 504].includes(response.status) && !FINAL_503.has(error.code)) {
          retry = `${response.status} from the ingress`;
        } else {
          throw error;
        }
      } catch (error) {
        if (error instanceof DockerServiceError && retry === undefined) throw error;
        if (retry === undefined) {
          const code = causeCode(error);
          last = new DockerServiceError(`${method} ${base}${path}: ${describe(error)}`,
            { code: code === 'timeout' ? 'timeout' : 'unreachable', url: base, cause: error });
          if (!idempotent && !NOT_SENT.has(code)) throw last;  // it may have arrived: do not send it twice
          retry = describe(error);
        }
      }
      if (attempt === this.attempts) break;
      if (retry !== 'rate limited') {  // fail over
        this.current = (index + 1) % this.baseUrls.length;
        this.failovers += 1;
      }
      this.onRetry({ method, path, from: base, to: this.baseUrls[this.current], attempt, reason: retry });
      const cycled = attempt % this.baseUrls.length === 0;
      await sleep(waitMs || (cycled ? 200 * attempt + Math.random() * 200 : 0));
    }
    throw last ?? new DockerServiceError(`${method} ${path}: no attempt made`, { code: 'unreachable' });
  }

  /** @param {PreviewSpec} spec */
  #remember(spec) {
    this.specs.delete(spec.workspace);
    this.specs.set(spec.workspace, spec);
    if (this.specs.size > REMEMBERED_SPECS) this.specs.delete(this.specs.keys().next().value ?? '');
  }

  /** @param {any} answer @returns {Preview} */
  #preview(answer) {
    return { ...answer, id: answer.workspace, state: stateOf(answer.phase) };
  }
}

/** @param {string} value */
function enc(value) {
  return encodeURIComponent(value);
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

/** @param {Response} response @param {string} base @returns {Promise<DockerServiceError>} */
async function errorOf(response, base) {
  const text = await response.text();
  /** @type {any} */
  let body = {};
  try { body = JSON.parse(text); } catch { body = {}; }
  const header = Number(response.headers.get('retry-after'));
  const retryAfterMs = Number.isFinite(header) && header > 0 ? header * 1000 : null;
  return new DockerServiceError(body.message ?? `${response.status} ${response.statusText}: ${text.slice(0, 200)}`, {
    status: response.status, code: body.error ?? `http_${response.status}`, field: body.field, fix: body.fix,
    known: body.known, retryAfterMs, url: base,
  });
}

/** @param {unknown} error @returns {string} */
function causeCode(error) {
  const failure = /** @type {any} */ (error);
  if (failure?.name === 'TimeoutError' || failure?.name === 'AbortError') return 'timeout';
  return failure?.cause?.code ?? failure?.code ?? failure?.cause?.cause?.code ?? 'unknown';
}

/** @param {unknown} error @returns {string} */
function describe(error) {
  const failure = /** @type {any} */ (error);
  const code = causeCode(error);
  return `${failure?.message ?? String(error)}${code !== 'unknown' ? ` (${code})` : ''}`;
}
