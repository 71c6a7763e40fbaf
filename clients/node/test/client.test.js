// The client's retry and failover rules, against real HTTP servers on loopback that fail the ways a fleet
// fails: an instance that is down (connection refused), an ingress whose instance restarts (502), the runtime's
// own refusals (no retry), a rate limit (Retry-After), a connection cut after the request arrived. What the
// answers mean is tested against the real service: lab.test.js.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';

import { DockerService, DockerServiceError, stateOf } from '../docker-service.js';

const PREVIEW = {
  workspace: 'ws-1', user: 'u1', project: 'ws-1', framework: 'tiny', phase: 'ready', ready: true, final: true,
  since: '2025-03-01T09:00:00Z', host: 'ax1', container_id: 'c1', url: 'http://10.0.0.11:32768',
  queue_position: null, waited_s: 0.1, error: null,
};
const servers = [];

/** A server answering with `handler`; its requests are recorded. */
async function serve(handler) {
  const seen = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      seen.push({ method: request.method, url: request.url, body, auth: request.headers.authorization });
      handler(request, response, seen.length);
    });
  });
  await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  servers.push(server);
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

function json(response, status, body, headers = {}) {
  response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

/** A port nothing listens on. */
async function closedUrl() {
  const server = http.createServer();
  await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  const { port } = server.address();
  await new Promise((resolve) => { server.close(resolve); });
  return `http://127.0.0.1:${port}`;
}

after(() => { for (const server of servers) server.close(); });

test('a preview keeps Fly-style names: id is the workspace, state the phase as a machine state', async () => {
  const up = await serve((_q, response) => json(response, 200, PREVIEW));
  const previews = new DockerService({ baseUrls: [up.url], token: 't0k' });
  const preview = await previews.status('ws-1');
  assert.equal(preview.id, 'ws-1');
  assert.equal(preview.state, 'started');
  assert.equal(up.seen[0].auth, 'Bearer t0k');
  assert.equal(stateOf('installing'), 'starting');
  assert.equal(stateOf('lost'), 'failed');
});

test('an instance that is down is skipped: the call goes to the next one, which then stays current', async () => {
  const down = await closedUrl();
  const up = await serve((_q, response) => json(response, 200, PREVIEW));
  const retries = [];
  const previews = new DockerService({
    baseUrls: [down, up.url], token: 't', first: 0, onRetry: (r) => retries.push(r),
  });
  assert.equal((await previews.create({ workspace: 'ws-1', user: 'u1', framework: 'tiny' })).phase, 'ready');
  assert.equal(retries.length, 1);
  assert.equal(retries[0].from, down);
  assert.match(retries[0].reason, /ECONNREFUSED/);
  await previews.status('ws-1');
  assert.equal(retries.length, 1, 'the working instance stays current');
  assert.deepEqual(JSON.parse(up.seen[0].body), { user: 'u1', framework: 'tiny' });
  assert.equal(up.seen[0].method, 'PUT');
});

test('a 502 from an ingress whose instance is restarting fails over for idempotent calls', async () => {
  const restarting = await serve((_q, response) => { response.writeHead(502); response.end('Bad Gateway'); });
  const up = await serve((_q, response) => json(response, 200, { workspace: 'ws-1', stopped: true }));
  const previews = new DockerService({ baseUrls: [restarting.url, up.url], token: 't', first: 0 });
  assert.deepEqual(await previews.stop('ws-1'), { workspace: 'ws-1', stopped: true });
  assert.equal(restarting.seen.length, 1);
});

test("the runtime's own refusals are errors with the field and the fix, never sent again", async () => {
  const full = await serve((_q, response) => json(response, 503, {
    error: 'queue_full', message: 'every host is full', fix: 'try again later' }, { 'Retry-After': '10' }));
  const other = await serve((_q, response) => json(response, 200, PREVIEW));
  const previews = new DockerService({ baseUrls: [full.url, other.url], token: 't', first: 0 });
  await assert.rejects(previews.create({ workspace: 'ws-1', user: 'u1', framework: 'tiny' }), (error) => {
    assert.ok(error instanceof DockerServiceError);
    assert.equal(error.status, 503);
    assert.equal(error.code, 'queue_full');
    assert.equal(error.retryAfterMs, 10000);
    return true;
  });
  assert.equal(full.seen.length, 1);
  assert.equal(other.seen.length, 0, 'a full fleet is full on every instance');

  const unknown = await serve((_q, response) => json(response, 400, {
    error: 'unknown_framework', message: "unknown framework 'rails'", field: 'framework',
    fix: 'use one of: nextjs, react', known: ['nextjs', 'react'] }));
  const client = new DockerService({ baseUrls: [unknown.url], token: 't' });
  await assert.rejects(client.create({ workspace: 'w', user: 'u', framework: 'rails' }), (error) => {
    assert.equal(error.code, 'unknown_framework');
    assert.equal(error.field, 'framework');
    assert.deepEqual(error.known, ['nextjs', 'react']);
    return true;
  });
  assert.equal(unknown.seen.length, 1);
});

test('a 429 waits Retry-After on the same instance, then goes on', async () => {
  const limited = await serve((_q, response, count) => (count === 1
    ? json(response, 429, { error: 'rate_limited', message: 'slow down' }, { 'Retry-After': '1' })
    : json(response, 200, PREVIEW)));
  const previews = new DockerService({ baseUrls: [limited.url], token: 't' });
  const started = Date.now();
  assert.equal((await previews.status('ws-1')).phase, 'ready');
  assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
  assert.equal(limited.seen.length, 2);
});

test('a connection cut after the request arrived: status is asked again elsewhere, a drain is not', async () => {
  const cut = await serve((request) => { request.socket.destroy(); });
  const up = await serve((_q, response) => json(response, 200, PREVIEW));
  const previews = new DockerService({ baseUrls: [cut.url, up.url], token: 't', first: 0 });
  assert.equal((await previews.status('ws-1')).phase, 'ready');
  assert.equal(cut.seen.length, 1);

  const drains = new DockerService({ baseUrls: [cut.url, up.url], token: 't', first: 0 });
  await assert.rejects(drains.drain('ax1'), (error) => {
    assert.equal(error.code, 'unreachable');
    return true;
  });
  assert.equal(cut.seen.length, 2, 'the drain reached the first instance once');
  assert.equal(up.seen.length, 1, 'and was not started on the second');
});

test('the routing questions: route and policy fail over, what records something is sent once', async () => {
  const cut = await serve((request) => { request.socket.destroy(); });
  const up = await serve((_q, response) => json(response, 200, { provider: 'hetzner', reason: 'allowlisted' }));
  const routing = new DockerService({ baseUrls: [cut.url, up.url], token: 't', first: 0 });
  assert.equal((await routing.route('u-1', 'ws-1')).provider, 'hetzner');
  assert.equal(up.seen[0].url, '/v1/routing/route?user=u-1&workspace=ws-1');
  await routing.routingPolicy();
  assert.equal(up.seen[1].url, '/v1/routing/policy');
  await routing.recordStart({ provider: 'fly', kind: 'warm', seconds: 9.5 });
  assert.deepEqual(JSON.parse(up.seen[2].body), { provider: 'fly', kind: 'warm', seconds: 9.5 });

  const once = new DockerService({ baseUrls: [cut.url, up.url], token: 't', first: 0 });
  await assert.rejects(once.placementFailed({ user: 'u-1', reason: 'queue full' }),
    (error) => error.code === 'unreachable');
  assert.equal(up.seen.length, 3, 'a failed placement that reached an instance is not recorded twice');
});

test('wait() long-polls with the last phase seen and reports each phase once', async () => {
  const phases = ['placing', 'installing', 'compiling', 'ready'];
  const polls = await serve((_q, response, count) => {
    const phase = phases[Math.min(count - 1, phases.length - 1)];
    json(response, 200, { ...PREVIEW, phase, ready: phase === 'ready', final: phase === 'ready' });
  });
  const previews = new DockerService({ baseUrls: [polls.url], token: 't' });
  const seen = [];
  const preview = await previews.wait('ws-1', { onPhase: (p) => seen.push(p.phase) });
  assert.equal(preview.phase, 'ready');
  assert.deepEqual(seen, phases);
  assert.match(polls.seen[0].url, /^\/v1\/previews\/ws-1\/wait\?timeout_s=\d+$/);
  assert.match(polls.seen[1].url, /after=placing/);
});

test('wait() rejects a preview that failed, with the preview and its reason', async () => {
  const failing = await serve((_q, response) => json(response, 200, {
    ...PREVIEW, phase: 'failed', ready: false, final: true, error: 'the dev server exited (code 1)' }));
  const previews = new DockerService({ baseUrls: [failing.url], token: 't' });
  await assert.rejects(previews.wait('ws-1'), (error) => {
    assert.equal(error.code, 'preview_failed');
    assert.equal(error.preview.error, 'the dev server exited (code 1)');
    return true;
  });
});

test('wait() after an instance died placing the preview starts it again on the next one', async () => {
  let placed = false;
  const dying = await serve((request, response, count) => {
    if (count === 1) json(response, 200, { ...PREVIEW, phase: 'placing', ready: false, final: false });
    else request.socket.destroy();  // died while placing: the wait's connection is cut
  });
  const next = await serve((request, response) => {
    if (request.method === 'PUT') {
      placed = true;
      json(response, 200, { ...PREVIEW, phase: 'placing', ready: false, final: false });
    } else if (!placed) {
      json(response, 404, { error: 'not_found', message: "workspace 'ws-1' has no preview" });
    } else {
      json(response, 200, PREVIEW);
    }
  });
  const previews = new DockerService({ baseUrls: [dying.url, next.url], token: 't', first: 0 });
  await previews.create({ workspace: 'ws-1', user: 'u1', framework: 'tiny' });
  assert.equal((await previews.wait('ws-1')).phase, 'ready');
  assert.deepEqual(next.seen.map((r) => r.method), ['GET', 'PUT', 'GET']);
  assert.deepEqual(JSON.parse(next.seen[1].body), { user: 'u1', framework: 'tiny' });

  const stranger = new DockerService({ baseUrls: [next.url], token: 't' });
  placed = false;
  await assert.rejects(stranger.wait('ws-2'), (error) => error.code === 'not_found');  // no failover: no restart
});

test('wait() starts a preview whose host died (lost) again, once', async () => {
  const starts = [];
  const fleet = await serve((request, response) => {
    if (request.method === 'PUT') {
      starts.push(JSON.parse(request.body ?? '{}'));
      json(response, 200, { ...PREVIEW, phase: 'placing', ready: false, final: false });
    } else if (starts.length < 2) {
      json(response, 200, { ...PREVIEW, phase: 'lost', ready: false, final: true, error: 'host ax1 is down' });
    } else {
      json(response, 200, starts.length === 2 ? PREVIEW : { ...PREVIEW, phase: 'lost', ready: false, final: true });
    }
  });
  const previews = new DockerService({ baseUrls: [fleet.url], token: 't' });
  const spec = {
    workspace: 'ws-1', user: 'u1', framework: 'tiny', repo: 'https://git.example/r.git', repo_token: 's3',
  };
  await previews.create(spec);
  const seen = [];
  assert.equal((await previews.wait('ws-1', { onPhase: (p) => seen.push(p.phase) })).phase, 'ready');
  assert.deepEqual(seen, ['lost', 'placing', 'ready']);
  assert.equal(fleet.seen.filter((r) => r.method === 'PUT').length, 2);
  assert.equal(JSON.parse(fleet.seen.filter((r) => r.method === 'PUT')[1].body).repo_token, 's3');

  await previews.create(spec);  // lost twice in one wait: rejected, not started a third time
  await assert.rejects(previews.wait('ws-1'), (error) => error.code === 'preview_failed');
  const stranger = new DockerService({ baseUrls: [fleet.url], token: 't' });  // did not start it: no restart
  await assert.rejects(stranger.wait('ws-1'), (error) => error.code === 'preview_failed');
});

test('a missing preview is null from status()', async () => {
  const none = await serve((_q, response) => json(response, 404, { error: 'not_found', message: 'no preview' }));
  const previews = new DockerService({ baseUrls: [none.url], token: 't' });
  assert.equal(await previews.status('ws-9'), null);
});

test('backend processes start on different instances (random first), or on the one asked for', () => {
  const firsts = new Set(Array.from({ length: 64 }, () => new DockerService({ baseUrls: ['http://a', 'http://b'],
    token: 't' }).current));
  assert.deepEqual([...firsts].sort(), [0, 1]);
  assert.equal(new DockerService({ baseUrls: ['http://a', 'http://b'], token: 't', first: 1 }).current, 1);
});

test('bad options are refused with the fix', () => {
  assert.throws(() => new DockerService({ baseUrls: [], token: 't' }), /baseUrls: give at least one/);
  assert.throws(() => new DockerService({ baseUrls: ['http://x'], token: '' }), /token: give/);
});
