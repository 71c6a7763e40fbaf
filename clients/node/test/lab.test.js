// docker-service.js against the real runtime service on the lab (run by tests/service_lab through pytest,
// which deploys the service on every lab host and passes the environment below). Fails, never skips, without it.
//   DRAPE_RUNTIME_URLS   the instances, comma-separated (https://<host>:443)
//   DRAPE_RUNTIME_TOKEN  a token with the 'previews' scope
//   NODE_EXTRA_CA_CERTS  the ingress CA (Node reads it at startup)
//   DRAPE_KILL_FIRST     a shell command that kills the first instance's service process (SIGKILL)
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { test } from 'node:test';

import { DockerService } from '../docker-service.js';

const URLS = (process.env.DRAPE_RUNTIME_URLS ?? '').split(',').filter(Boolean);
const TOKEN = process.env.DRAPE_RUNTIME_TOKEN ?? '';
if (URLS.length < 2 || !TOKEN) {
  throw new Error('set DRAPE_RUNTIME_URLS (two instances or more) and DRAPE_RUNTIME_TOKEN: these tests run against '
    + 'the lab through pytest tests/service_lab');
}
const run = `${process.pid}-${Date.now() % 100000}`;
const spec = (workspace, env = {}) => ({ workspace: `${workspace}-${run}`, user: 'u-node', framework: 'tiny', env });

test('start a preview through the service, follow its phases, get its URL, stop it', async () => {
  const previews = new DockerService({ baseUrls: URLS, token: TOKEN });
  const wanted = spec('node-life', { TINY_INSTALL_S: '3', TINY_COMPILE_S: '3' });  // the runtime polls <= 1.5 s
  const created = await previews.create(wanted);
  assert.equal(created.id, wanted.workspace);
  assert.ok(['placing', 'starting', 'installing', 'queued'].includes(created.phase), created.phase);
  const phases = [];
  const ready = await previews.wait(created.id, {
    state: 'started', timeoutMs: 120000, onPhase: (p) => phases.push(p.phase),
  });
  assert.equal(ready.state, 'started');
  assert.ok(phases.includes('installing') && phases.includes('compiling'), phases.join(' > '));
  assert.equal(phases.at(-1), 'ready');
  const page = await fetch(ready.url);
  assert.equal(page.status, 200);
  assert.equal((await page.text()).trim(), `preview of ${wanted.workspace}`);

  const hot = await previews.start(wanted);
  assert.equal(hot.phase, 'ready');
  assert.equal(hot.container_id, ready.container_id);
  await previews.activity(wanted.workspace);

  const stopped = { workspace: wanted.workspace, stopped: true, pending_hosts: [] };
  assert.deepEqual(await previews.stop(wanted.workspace), stopped);
  assert.equal(await previews.status(wanted.workspace), null);
  await assert.rejects(fetch(ready.url, { signal: AbortSignal.timeout(3000) }));
  assert.deepEqual(await previews.remove(wanted.workspace), { ...stopped, stopped: false });
});

test('two instances on two hosts serve the same workspace consistently', async () => {
  const [first, second] = URLS.map((url) => new DockerService({ baseUrls: [url], token: TOKEN, attempts: 1 }));
  const wanted = spec('node-two');
  const held = await first.create(wanted, { waitMs: 20000 });  // held until ready, or 20 s on a busy machine
  const onFirst = held.ready ? held : await first.wait(held.id, { timeoutMs: 120000 });
  assert.equal(onFirst.phase, 'ready');
  const onSecond = await second.status(wanted.workspace);
  for (const field of ['host', 'container_id', 'url', 'user', 'framework']) {
    assert.equal(onSecond[field], onFirst[field], field);
  }
  const hotOnSecond = await second.start(wanted);
  assert.equal(hotOnSecond.container_id, onFirst.container_id, 'the second instance did not start another one');
  const listed = (await second.list()).filter((p) => p.workspace === wanted.workspace);
  assert.equal(listed.length, 1);
  await assert.rejects(second.create({ ...wanted, user: 'someone-else' }), (error) => {
    assert.equal(error.status, 409);
    assert.equal(error.field, 'user');
    return true;
  });
  assert.equal((await second.stop(wanted.workspace)).stopped, true);
  assert.equal(await first.status(wanted.workspace), null);
});

test('an instance killed mid-request loses nothing: the client goes on with another', async () => {
  assert.ok(process.env.DRAPE_KILL_FIRST, 'set DRAPE_KILL_FIRST');
  const retries = [];
  const previews = new DockerService({ baseUrls: URLS, token: TOKEN, first: 0, onRetry: (r) => retries.push(r) });
  const wanted = spec('node-kill', { TINY_INSTALL_S: '8' });
  const created = await previews.create(wanted);
  assert.equal(previews.current, 0, 'the first instance answered');
  let killed = false;
  const ready = await previews.wait(created.id, {
    timeoutMs: 150000,
    onPhase: (preview) => {  // mid-install, while the next long-poll is held open by the first instance
      if (preview.phase === 'installing' && !killed) {
        killed = true;
        setTimeout(() => execSync(process.env.DRAPE_KILL_FIRST, { stdio: 'inherit' }), 1000);
      }
    },
  });
  assert.ok(killed, 'the preview was seen installing');
  assert.equal(ready.phase, 'ready');
  assert.ok(retries.some((r) => r.from === URLS[0] && r.path.includes('/wait')), JSON.stringify(retries));
  const again = await previews.status(wanted.workspace);
  assert.equal(again.container_id, ready.container_id);
  const all = (await previews.list()).filter((p) => p.workspace === wanted.workspace);
  assert.equal(all.length, 1, 'one preview, not a second one started by the other instance');
  await previews.stop(wanted.workspace);
});

test('bad input through the client: the code, the field and the fix', async () => {
  const previews = new DockerService({ baseUrls: URLS, token: TOKEN });
  await assert.rejects(previews.create({ ...spec('node-bad'), framework: 'rails' }), (error) => {
    assert.equal(error.status, 400);
    assert.equal(error.code, 'unknown_framework');
    assert.ok(error.known.includes('tiny'), error.known);
    return true;
  });
  const stranger = new DockerService({ baseUrls: URLS, token: 'drt_not-a-token' });
  await assert.rejects(stranger.status('ws-1'), (error) => error.status === 401 && error.code === 'unauthorized');
});

test('the routing questions through the service: the policy in force and a route', async () => {
  const previews = new DockerService({ baseUrls: URLS, token: TOKEN });
  const policy = await previews.routingPolicy();
  assert.equal(typeof policy.phase, 'number');
  assert.equal(typeof policy.generation, 'number');
  const route = await previews.route('u-node', `ws-route-${run}`);
  assert.ok(['hetzner', 'fly'].includes(/** @type {string} */ (route.provider)), JSON.stringify(route));
  assert.equal(route.phase, policy.phase);
  await assert.rejects(previews.route('not a user'), (error) => error.status === 422 && error.field === 'query.user');
});
