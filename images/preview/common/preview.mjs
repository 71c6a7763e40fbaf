// The preview's supervisor, started by entrypoint.sh in the project's directory (the user's clone, or the
// template's starter). It finds out what the project is (framework, Node major, package manager), installs its
// dependencies from the shared store, starts its dev server where the preview expects it ($PORT on all
// interfaces, whatever the project's own configuration says), compiles the start page, and only then reports
// `ready`. Anything that goes wrong becomes "failed: <why>" with the log's last lines, never a hang.
// Phase file contract: see entrypoint.sh. Timings of each step go to $DRAPE_TIMINGS_FILE (JSON); each install is
// also recorded in the workspace ($DRAPE_WORKDIR/.drape/installs.jsonl: when, which path, how long), which
// `invoke cache.status` reads for the store's hit rate.
//
// The shared store is read-only here and shared with the trusted job that fills it (DRAPE_FILL_STORE=1, the same
// supervisor: `invoke cache.warm`). Installs hold a shared lock on the store directory (flock), fills too; the
// job's swap of a rebuilt store takes it exclusively, so a store is never pruned under a running install.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'

const env = process.env
const PORT = Number(env.PORT || 3000)
const PHASE_FILE = env.DRAPE_PHASE_FILE || '/drape/phase'
const TIMINGS_FILE = env.DRAPE_TIMINGS_FILE || path.join(path.dirname(PHASE_FILE), 'timings.json')
const WORKDIR = env.DRAPE_WORKDIR || '/workspace'
const STATE = path.join(WORKDIR, '.drape')
const SHARED_STORE = env.DRAPE_PNPM_STORE || '/pnpm-store'
const IMPORT_METHOD = env.DRAPE_IMPORT_METHOD || 'clone-or-copy'
const LISTEN_TIMEOUT_S = Number(env.DRAPE_LISTEN_TIMEOUT_S || 45)
const PAGE_TIMEOUT_S = Number(env.DRAPE_PAGE_TIMEOUT_S || 300)
const INSTALL_TIMEOUT_S = Number(env.DRAPE_INSTALL_TIMEOUT_S || 900)
const NODE_DIR = '/opt/drape/node'   // extra Node majors: /opt/drape/node/<major>/bin/node
const PNPM_DIR = '/opt/drape/pnpm'   // pnpm majors: /opt/drape/pnpm/<major>/bin/pnpm
const DEFAULT_PNPM = Number(env.DRAPE_DEFAULT_PNPM || 10)
const FILL_STORE = Boolean(env.DRAPE_FILL_STORE)  // the trusted job: this project's packages into the store
const STORE_LOCK_WAIT_S = Number(env.DRAPE_STORE_LOCK_WAIT_S || 120)
const STOP_GRACE_S = Number(env.DRAPE_STOP_GRACE_S || 8)  // below the runtime's stop timeout (10 s)
const FLOCK = '/usr/bin/flock'
const APP = process.cwd()

fs.mkdirSync(path.dirname(PHASE_FILE), { recursive: true })
fs.mkdirSync(STATE, { recursive: true })
const timings = { started_at: Number(env.DRAPE_STARTED_AT_MS || Date.now()) }
const mark = (name, since) => { timings[name] = Math.round(Date.now() - since) / 1000 }
if (env.DRAPE_FETCHED_AT_MS) timings.fetch_s = (Number(env.DRAPE_FETCHED_AT_MS) - timings.started_at) / 1000

// ---------------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------------
const clean = (line) => String(line).replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, 200)

function writeWhole (file, text) {
  fs.writeFileSync(file + '.tmp', text)
  fs.renameSync(file + '.tmp', file)
}

function phase (name, details = []) {
  const lines = [...details.map(clean).filter((l) => l.trim()).slice(-12), clean(name)]
  // Timings first, each file replaced whole: whoever sees a phase finds the timings that go with it.
  try { writeWhole(TIMINGS_FILE, JSON.stringify(timings) + '\n') } catch {}
  writeWhole(PHASE_FILE, lines.join('\n') + '\n')
  console.error(`drape-preview: ${lines[lines.length - 1]}`)
}

let current = null  // the child running now (an install, then the dev server)
function fail (why, log = []) {
  phase(`failed: ${why}`, log)
  if (current) killGroup(current, 'SIGKILL')
  process.exit(1)
}
// As PID 1 (without an init) a signal has no default action: stop what runs, then leave. The dev server gets
// STOP_GRACE_S to finish: Next.js writes its compile cache (Turbopack's) into the kept workspace as it exits.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (!current) process.exit(0)
    killGroup(current, 'SIGTERM')
    setTimeout(() => { killGroup(current, 'SIGKILL'); process.exit(0) }, STOP_GRACE_S * 1000).unref()
    current.once('exit', () => process.exit(0))
  })
}

class Tail {  // the last lines of a process's output, kept for the failure report
  constructor (size = 40) { this.size = size; this.lines = []; this.partial = '' }
  push (chunk) {
    const parts = (this.partial + chunk.toString()).split(/\r?\n/)
    this.partial = parts.pop()
    for (const l of parts) if (l.trim()) this.lines.push(l)
    if (this.lines.length > this.size) this.lines.splice(0, this.lines.length - this.size)
  }
  // The last lines without stack frames ("    at ..."), after the first line that names an error: the
  // headline a user needs, then what followed it.
  last (n = 12) {
    const lines = [...this.lines, this.partial].filter((l) => l.trim() && !/^\s+at\s/.test(l) && !/^\s*[│╭╰─]/.test(l))
    const headline = lines.findIndex((l) => /error|failed|cannot|not found/i.test(l))
    const tail = lines.slice(-n)
    return headline >= 0 && headline < lines.length - n ? [lines[headline], ...tail.slice(1)] : tail
  }
  text () { return this.lines.join('\n') + '\n' + this.partial }
}

function killGroup (child, signal) { try { process.kill(-child.pid, signal) } catch {} }

// Run a command to completion with its output shown (docker logs) and kept; resolves {code, tail}.
function run (command, args, { timeoutS = INSTALL_TIMEOUT_S, extraEnv = {} } = {}) {
  return new Promise((resolve) => {
    const tail = new Tail(60)
    const child = spawn(command, args, { env: { ...childEnv, ...extraEnv }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    current = child
    const onData = (d) => { tail.push(d); process.stdout.write(d) }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setTimeout(() => { tail.push(`\n(stopped after ${timeoutS} s)\n`); killGroup(child, 'SIGKILL') }, timeoutS * 1000)
    child.on('error', (err) => { clearTimeout(timer); tail.push(String(err)); resolve({ code: 127, tail }) })
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? (signal ? 128 : 1), tail }) })
  })
}

// ---------------------------------------------------------------------------------------------------
// What the project is
// ---------------------------------------------------------------------------------------------------
const exists = (f) => fs.existsSync(path.join(APP, f))
const read = (f) => fs.readFileSync(path.join(APP, f), 'utf8')

function readPackage () {
  if (!exists('package.json')) fail('the repository has no package.json at its root: previews run Next.js and Vite projects from the repository root')
  try { return JSON.parse(read('package.json')) } catch (err) { fail(`package.json is not valid JSON (${err.message})`) }
}

function detectFramework (pkg) {
  const deps = { ...(pkg.devDependencies || {}), ...(pkg.dependencies || {}) }
  if (deps.next) return 'next'
  if (deps.vite) return 'vite'
  fail('this project is neither Next.js nor Vite (package.json lists neither next nor vite): previews run Next.js and Vite projects')
}

function semverLib () {
  for (const dir of ['/usr/local/lib/node_modules/npm/', '/usr/lib/node_modules/npm/']) {
    try { return createRequire(dir)('semver') } catch {}
  }
  return null
}

// The Node to run the project with: the image's own (default) or an extra major, as the project asks through
// .nvmrc / .node-version (a version or major) or engines.node (a range).
function chooseNode (pkg) {
  const available = { [process.versions.node.split('.')[0]]: { version: process.versions.node, bin: path.dirname(process.execPath) } }
  if (fs.existsSync(NODE_DIR)) {
    for (const major of fs.readdirSync(NODE_DIR)) {
      const bin = path.join(NODE_DIR, major, 'bin')
      try { available[major] = { version: fs.readFileSync(path.join(NODE_DIR, major, 'VERSION'), 'utf8').trim(), bin } } catch {}
    }
  }
  const defaultMajor = process.versions.node.split('.')[0]
  const have = Object.values(available).map((a) => a.version).sort().join(', ')
  for (const file of ['.nvmrc', '.node-version']) {
    if (!exists(file)) continue
    const wanted = read(file).split('\n')[0].trim().replace(/^v/, '')
    if (!wanted || /^(lts\/.*|node|stable|latest)$/.test(wanted)) return { major: defaultMajor, ...available[defaultMajor], why: `${file}: ${wanted}` }
    const major = wanted.split('.')[0]
    if (available[major]) return { major, ...available[major], why: `${file}: ${wanted}` }
    fail(`this project asks for Node ${wanted} (${file}); previews have Node ${have}: set ${file} to ${defaultMajor}`)
  }
  const range = pkg.engines && pkg.engines.node
  const semver = range ? semverLib() : null
  if (range && semver && semver.validRange(range)) {
    const order = [defaultMajor, ...Object.keys(available).filter((m) => m !== defaultMajor).sort((a, b) => b - a)]
    const fit = order.find((m) => semver.satisfies(available[m].version, range))
    if (fit) return { major: fit, ...available[fit], why: `engines.node: ${range}` }
    fail(`this project asks for Node ${range} (package.json engines.node); previews have Node ${have}: widen engines.node to include ${defaultMajor}`)
  }
  return { major: defaultMajor, ...available[defaultMajor], why: 'default' }
}

function choosePackageManager (pkg) {
  const [name, version] = String(pkg.packageManager || '').split('+')[0].split('@')
  const lock = ['pnpm-lock.yaml', 'package-lock.json', 'npm-shrinkwrap.json', 'yarn.lock'].find(exists)
  const manager = { 'pnpm-lock.yaml': 'pnpm', 'package-lock.json': 'npm', 'npm-shrinkwrap.json': 'npm', 'yarn.lock': 'yarn' }[lock] ||
    (['npm', 'yarn', 'pnpm'].includes(name) ? name : 'pnpm')
  const notes = []
  if (name && name !== manager) notes.push(`packageManager says ${name}, the lockfile is ${lock}: installing with ${manager}`)
  let pnpmMajor = DEFAULT_PNPM
  if (manager === 'pnpm') {
    const majors = fs.existsSync(PNPM_DIR) ? fs.readdirSync(PNPM_DIR).map(Number).filter(Boolean).sort((a, b) => a - b) : []
    const asked = name === 'pnpm' ? Number(String(version).split('.')[0]) : DEFAULT_PNPM
    pnpmMajor = majors.includes(asked) ? asked : (asked < majors[0] ? majors[0] : majors[majors.length - 1])
    if (pnpmMajor !== asked) notes.push(`pnpm ${asked} is not in previews: using pnpm ${pnpmMajor}`)
  }
  return { manager, lock, pnpmMajor, notes }
}

// ---------------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------------
// NODE_COMPILE_CACHE: Node keeps the compiled code of the modules it loads (the dev server's, pnpm's) in the
// workspace, so a kept workspace's next start loads them faster.
const childEnv = { ...env, NODE_COMPILE_CACHE: path.join(STATE, 'node-compile-cache'), CI: 'true', FORCE_COLOR: '0', NO_COLOR: '1', BROWSER: 'none', NEXT_TELEMETRY_DISABLED: '1', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }

// A command run under a shared lock on the store directory: the store is not swapped (pruned) while it runs.
function underStoreLock (command, args, store = SHARED_STORE) {
  if (!fs.existsSync(FLOCK)) return [command, args]
  return [FLOCK, ['--shared', '--wait', String(STORE_LOCK_WAIT_S), store, command, ...args]]
}

function recordInstall (details) {  // one line per start, kept with the workspace: the store's hit rate
  const line = { at: new Date().toISOString(), path: timings.install_path, install_s: timings.install_s ?? 0, package_manager: timings.package_manager }
  try { fs.appendFileSync(path.join(STATE, 'installs.jsonl'), JSON.stringify(line) + '\n') } catch {}
  return details
}

function installStamp (node, pm) {
  const hash = createHash('sha256').update(`${node.version} ${pm.manager} ${pm.pnpmMajor}\n`).update(read('package.json'))
  if (pm.lock) hash.update(read(pm.lock))
  return hash.digest('hex')
}

function outdatedReason (text, lock) {
  if (/ERR_PNPM_OUTDATED_LOCKFILE|can only install packages when your package\.json and package-lock\.json|lockfile needs to be updated|YN0028/.test(text)) {
    return `${lock} is out of date with package.json: run the install locally and commit ${lock}`
  }
  if (/ENOSPC|no space left on device/i.test(text)) return 'the dependencies do not fit the preview\'s disk'
  return null
}

async function install (node, pm, found) {
  const stampFile = path.join(APP, 'node_modules', '.drape-install')
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8').trim() === installStamp(node, pm)) {
    timings.install_path = 'kept'
    return recordInstall([found, 'dependencies unchanged since the last preview of this workspace'])
  }
  const t0 = Date.now()
  let result
  let details = [found, ...pm.notes]
  if (pm.manager === 'pnpm') {
    const pnpm = path.join(PNPM_DIR, String(pm.pnpmMajor), 'bin', 'pnpm')
    const common = ['install', '--reporter=append-only', '--config.confirm-modules-purge=false',
      '--config.side-effects-cache-readonly=true', '--config.manage-package-manager-versions=false',
      '--config.pm-on-fail=ignore',
      '--config.package-manager-strict=false', '--config.update-notifier=false',
      ...(pm.lock ? ['--frozen-lockfile'] : ['--no-frozen-lockfile'])]
    if (pm.lock && fs.existsSync(SHARED_STORE)) {
      result = await run(...underStoreLock(pnpm, [...common, '--offline', '--store-dir', SHARED_STORE, '--package-import-method', IMPORT_METHOD]))
      timings.install_path = 'shared store'
      const why = outdatedReason(result.tail.text(), pm.lock)
      if (why) fail(why, result.tail.last())
    }
    if (!result || result.code !== 0) {
      const note = !pm.lock ? 'no lockfile: resolving the dependencies from the registry (slower)'
        : result ? 'some packages are not in the shared store yet: fetching them from the registry (slower)'
          : 'no shared store in this preview: fetching the packages from the registry (slower)'
      details = [...details, note]
      phase('installing', details)
      result = await run(pnpm, [...common, '--prefer-offline', '--store-dir', path.join(STATE, 'pnpm-store'), '--package-import-method', 'clone-or-copy'])
      timings.install_path = 'registry'
    }
  } else if (pm.manager === 'npm') {
    details = [...details, `npm (${pm.lock || 'no lockfile'}): the slower path, without the shared store`]
    phase('installing', details)
    const args = pm.lock ? ['ci'] : ['install']
    result = await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--cache', path.join(STATE, 'npm-cache')])
    timings.install_path = 'npm'
  } else {
    const yarnrc = exists('.yarnrc.yml') ? read('.yarnrc.yml') : ''
    const yarnPath = (yarnrc.match(/^yarnPath:\s*["']?([^"'\n]+)/m) || [])[1]
    details = [...details, `yarn (${pm.lock}): the slower path, without the shared store`]
    phase('installing', details)
    if (yarnPath) {
      result = await run('node', [yarnPath, 'install', '--immutable'], { extraEnv: { YARN_ENABLE_GLOBAL_CACHE: 'false', YARN_ENABLE_TELEMETRY: '0' } })
    } else if (/^# yarn lockfile v1/m.test(read(pm.lock))) {
      result = await run('yarn', ['install', '--frozen-lockfile', '--non-interactive', '--cache-folder', path.join(STATE, 'yarn-cache')])
    } else {
      fail('this project uses Yarn 2 or later without its release committed (yarnPath in .yarnrc.yml): commit .yarn/releases, or use pnpm')
    }
    timings.install_path = 'yarn'
  }
  mark('install_s', t0)
  if (result.code !== 0) {
    fail(outdatedReason(result.tail.text(), pm.lock) || `installing the dependencies failed (${pm.manager} exited with ${result.code})`, result.tail.last())
  }
  fs.writeFileSync(stampFile, installStamp(node, choosePackageManager(pkg)) + '\n')  // the lockfile may be new
  return recordInstall(details)
}

// The trusted job's install (DRAPE_FILL_STORE=1): the project's packages into the (writable) store, online, no
// scripts run, nothing kept but the store's new files. Prints what it added.
async function fillStore (pm) {
  if (pm.manager !== 'pnpm') {
    timings.fill = { skipped: `${pm.manager} project: previews install it without the shared store` }
    return
  }
  const pnpm = path.join(PNPM_DIR, String(pm.pnpmMajor), 'bin', 'pnpm')
  const t0 = Date.now()
  const result = await run(...underStoreLock(pnpm, ['install', '--reporter=append-only', '--ignore-scripts',
    '--config.confirm-modules-purge=false', '--config.side-effects-cache=false',
    '--config.manage-package-manager-versions=false', '--config.pm-on-fail=ignore',
    '--config.package-manager-strict=false',
    '--config.update-notifier=false', pm.lock ? '--frozen-lockfile' : '--no-frozen-lockfile',
    '--prefer-offline', '--store-dir', SHARED_STORE, '--package-import-method', 'copy'], SHARED_STORE))
  mark('fill_s', t0)
  const progress = [...result.tail.text().matchAll(/reused (\d+), downloaded (\d+)/g)].pop()
  timings.fill = { code: result.code, pnpm: pm.pnpmMajor, reused: progress ? Number(progress[1]) : null, downloaded: progress ? Number(progress[2]) : null }
  if (result.code !== 0) timings.fill.error = (outdatedReason(result.tail.text(), pm.lock) || `pnpm exited with ${result.code}`) + ': ' + result.tail.last(3).join(' | ')
}

// ---------------------------------------------------------------------------------------------------
// The dev server, where the preview expects it
// ---------------------------------------------------------------------------------------------------
function keptFlags (script, binary, keep) {
  // The project's own flags for its dev server that do not decide where it listens (e.g. --turbopack, --mode).
  const words = String(script || '').trim().split(/\s+/)
  if (words[0] !== binary) return []
  const out = []
  for (let i = 1; i < words.length; i++) {
    if (keep.flags.includes(words[i])) out.push(words[i])
    else if (keep.withValue.includes(words[i]) && words[i + 1]) out.push(words[i], words[++i])
  }
  return out
}

function devCommand (framework, pkg) {
  const bin = path.join(APP, 'node_modules', '.bin', framework)
  if (!fs.existsSync(bin)) fail(`node_modules/.bin/${framework} is missing after the install: is ${framework} in package.json?`)
  const script = pkg.scripts && pkg.scripts.dev
  if (framework === 'next') {
    const own = keptFlags(script, 'next', { flags: ['--turbopack', '--turbo', '--webpack'], withValue: [] })
    return [bin, ['dev', ...own.filter((w) => w !== 'dev'), '-H', '0.0.0.0', '-p', String(PORT)]]
  }
  const own = keptFlags(script, 'vite', { flags: ['--force'], withValue: ['--mode', '-m', '--config', '-c'] })
  return [bin, [...own, '--host', '0.0.0.0', '--port', String(PORT), '--strictPort']]
}

function listeningPorts () {
  const ports = new Set()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/)
        if (cols[3] === '0A') ports.add(parseInt(cols[1].split(':').pop(), 16))
      }
    } catch {}
  }
  return [...ports]
}

const answers = (port) => new Promise((resolve) => {
  const socket = net.connect({ host: '127.0.0.1', port, timeout: 500 })
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
  socket.once('timeout', () => { socket.destroy(); resolve(false) })
})

// GET the start page as a browser would (redirects followed on this server), then what it loads (scripts,
// styles, and their first-level imports): frameworks that compile on request compile now, not for the user.
// Next.js (Turbopack) compiles the page's client chunks with the page itself: fetching them again only re-serves
// about 4 MB of JavaScript (0.2-0.6 s measured, the same with or without its compile cache), so it is skipped.
async function compileStartPage (deadline, framework) {
  const base = `http://127.0.0.1:${PORT}`
  const get = async (url) => {
    const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())), headers: { accept: 'text/html,*/*', 'user-agent': 'drape-preview-warmup' } })
    return { status: response.status, location: response.headers.get('location'), body: await response.text() }
  }
  let url = base + '/'
  let page
  for (let hop = 0; hop <= 5; hop++) {
    page = await get(url)
    if (page.status < 300 || page.status >= 400 || !page.location) break
    const next = new URL(page.location, url)
    if (next.port !== String(PORT) || !['127.0.0.1', 'localhost', '0.0.0.0'].includes(next.hostname)) break
    url = next.href
  }
  const assets = new Set()
  if (framework === 'next') return { status: page.status, path: new URL(url).pathname, assets: 0 }
  for (const m of page.body.matchAll(/<(?:script|link)\b[^>]*?(?:src|href)="(\/[^"/][^"]*)"/g)) assets.add(m[1].replace(/&amp;/g, '&'))
  const loaded = await Promise.allSettled([...assets].slice(0, 40).map((a) => get(base + a)))
  const imports = new Set()
  for (const r of loaded) {
    if (r.status !== 'fulfilled') continue
    for (const m of r.value.body.matchAll(/(?:from|import)\s*["'](\/[^"']+)["']/g)) if (!assets.has(m[1])) imports.add(m[1])
  }
  await Promise.allSettled([...imports].slice(0, 40).map((a) => get(base + a)))
  return { status: page.status, path: new URL(url).pathname, assets: assets.size + Math.min(imports.size, 40) }
}

// Next.js's own lock on the project (.next/dev/lock): the workspace's previous container may still be writing its
// compile cache as it stops, and a second `next dev` gives up after a second. Such a start waits for it.
const PREVIOUS_STILL_STOPPING = /Another .*next dev.* server is already running/
const LOCK_WAIT_S = STOP_GRACE_S + 4

function startServer (command, args, node, framework) {
  const tail = new Tail(60)
  const extraEnv = framework === 'next' ? { __NEXT_DEV_WAIT_FOR_TURBOPACK_SHUTDOWN: '1' } : {}  // see STOP_GRACE_S
  const child = spawn(command, args, {
    env: { ...childEnv, ...extraEnv, PORT: String(PORT), HOST: '0.0.0.0', PATH: `${node.bin}:${env.PATH}` },
    detached: true, stdio: ['ignore', 'pipe', 'pipe']
  })
  const onData = (d) => { tail.push(d); process.stdout.write(d) }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const state = { child, tail, exited: null }
  state.exit = new Promise((resolve) => child.on('exit', (code, signal) => { state.exited = { code, signal }; resolve(state.exited) }))
  return state
}

async function serve (framework, pkg, node, details) {
  const [command, args] = devCommand(framework, pkg)
  const t0 = Date.now()
  phase('compiling', details)
  let dev = startServer(command, args, node, framework)
  current = dev.child
  const exitReason = () => `the dev server exited (${dev.exited.signal || 'code ' + dev.exited.code})`

  const listenDeadline = Date.now() + LISTEN_TIMEOUT_S * 1000
  const lockDeadline = Date.now() + LOCK_WAIT_S * 1000
  while (!(await answers(PORT))) {
    if (dev.exited && PREVIOUS_STILL_STOPPING.test(dev.tail.text()) && Date.now() < lockDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      dev = startServer(command, args, node, framework)
      current = dev.child
      continue
    }
    if (dev.exited) fail(`${exitReason()} before answering on port ${PORT}`, dev.tail.last())
    if (Date.now() > listenDeadline) {
      // Ports a project configures are below the ephemeral range; tools' own listeners (workers, inspectors)
      // get ephemeral ones and say nothing about where the dev server went.
      const elsewhere = listeningPorts().filter((p) => p !== PORT && p < 32768)
      const where = elsewhere.length ? `; it listens on port ${elsewhere.join(', ')} instead (the project's own configuration)` : ''
      fail(`nothing answers on port ${PORT} after ${LISTEN_TIMEOUT_S} s${where}`,
        dev.tail.last().length ? dev.tail.last() : ['(the dev server printed nothing)'])
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  mark('listen_s', t0)
  const t1 = Date.now()
  const page = await Promise.race([
    compileStartPage(Date.now() + PAGE_TIMEOUT_S * 1000, framework).catch((err) => ({ error: err })),
    dev.exit.then(() => null)
  ])
  if (!page) fail(`${exitReason()} while compiling the start page`, dev.tail.last())
  if (page.error) fail(`the start page did not answer within ${PAGE_TIMEOUT_S} s (${page.error.name === 'TimeoutError' ? 'still compiling' : page.error.message})`, dev.tail.last())
  mark('page_s', t1)
  timings.page_status = page.status
  const note = page.status >= 500 ? [`the start page answers ${page.status}: the app has an error (shown in the preview)`]
    : page.status >= 400 ? [`the start page (${page.path}) answers ${page.status}`] : []
  phase('ready', [...details, ...note, `start page compiled in ${timings.page_s} s` + (page.assets ? ` (${page.assets} assets)` : '')])
  await dev.exit
  fail(`${exitReason()}`, dev.tail.last())
}

// ---------------------------------------------------------------------------------------------------
const pkg = readPackage()
if (FILL_STORE) {
  await fillStore(choosePackageManager(pkg))
  writeWhole(TIMINGS_FILE, JSON.stringify(timings) + '\n')
  process.exit(timings.fill.code ? 1 : 0)
}
const framework = detectFramework(pkg)
const node = chooseNode(pkg)
const pm = choosePackageManager(pkg)
timings.framework = framework
timings.node = node.version
timings.package_manager = pm.manager === 'pnpm' ? `pnpm ${pm.pnpmMajor}` : pm.manager
// What the project was found to be heads every later phase's details: the user sees which Node and package
// manager ran, and why, whatever happens next.
const found = `${framework === 'next' ? 'Next.js' : 'Vite'} project, Node ${node.version} (${node.why}), ${timings.package_manager}`
phase('installing', [found])
const details = await install(node, pm, found)
if (env.DRAPE_INSTALL_ONLY) {  // the image's own starter, at build time: installed, nothing served
  writeWhole(TIMINGS_FILE, JSON.stringify(timings) + '\n')
  process.exit(0)
}
await serve(framework, pkg, node, details)
