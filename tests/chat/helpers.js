'use strict';
// Shared helpers for the chat server tests: spawn the real server process on
// an ephemeral port and drive it with real TCP clients on 127.0.0.1.

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const SERVER = path.resolve(__dirname, '../../templates/workloads/chat/server.js');
const DEFAULT_TIMEOUT = 5000;

// Splits a byte stream into "\n"-terminated lines, decoding whole lines only.
class LineSplitter {
  constructor(onLine) {
    this.onLine = onLine;
    this.rest = Buffer.alloc(0);
  }

  push(chunk) {
    let buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    let nl;
    while ((nl = buf.indexOf(0x0a)) !== -1) {
      this.onLine(buf.subarray(0, nl).toString('utf8'));
      buf = buf.subarray(nl + 1);
    }
    this.rest = Buffer.from(buf);
  }
}

// A growing list of lines that can be awaited: waitFor() resolves with the
// first line (at or after `from`) that matches, or rejects after a timeout.
class LineLog {
  constructor(name) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.ended = false;
  }

  add(line) {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => !w.check());
  }

  // No more lines will come: waiters that are not satisfied fail right away.
  end() {
    this.ended = true;
    for (const w of this.waiters) if (!w.check()) w.fail('stream ended');
    this.waiters = [];
  }

  // match: string (exact line), RegExp, or predicate.
  waitFor(match, { timeout = DEFAULT_TIMEOUT, from = 0 } = {}) {
    const test = toMatcher(match);
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          for (let i = from; i < this.lines.length; i++) {
            if (test(this.lines[i])) {
              clearTimeout(w.timer);
              resolve({ line: this.lines[i], index: i });
              return true;
            }
          }
          return false;
        },
      };
      w.fail = (why) => {
        clearTimeout(w.timer);
        reject(
          new Error(
            `${this.name}: ${why} while waiting for ${describe(match)}; ` +
              `last lines ${JSON.stringify(this.lines.slice(-10).map(short))}`,
          ),
        );
      };
      if (w.check()) return;
      if (this.ended) return w.fail('stream ended');
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.fail(`timed out after ${timeout} ms`);
      }, timeout);
      this.waiters.push(w);
      return undefined;
    });
  }
}

function toMatcher(match) {
  if (typeof match === 'string') return (l) => l === match;
  if (match instanceof RegExp) return (l) => match.test(l);
  return match;
}

function short(l) {
  return l.length > 120 ? `${l.slice(0, 100)}... (${l.length} chars)` : l;
}

function describe(match) {
  if (typeof match === 'function') return match.toString();
  return JSON.stringify(String(match));
}

// Starts the server with CHAT_PORT=0 and reads the bound port (and, with
// CHAT_PROXY_PORT=0 in env, the PROXY protocol port) from the startup line.
// Every process is killed when the test ends.
async function startServer(t, env = {}) {
  const proc = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH, CHAT_PORT: '0', CHAT_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = new LineLog('server stdout');
  const stderr = [];
  const out = new LineSplitter((l) => log.add(l));
  proc.stdout.on('data', (d) => out.push(d));
  proc.stderr.on('data', (d) => stderr.push(d));
  const exited = new Promise((resolve) => {
    // 'close' (not 'exit'): stdout and stderr are fully read by then.
    proc.on('close', (code, signal) => {
      log.end();
      resolve({ code, signal, at: Date.now() });
    });
  });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    return exited;
  });
  let line;
  try {
    ({ line } = await log.waitFor(/^chat server listening on /));
  } catch (err) {
    const ex = await Promise.race([exited, delay(500)]);
    if (ex) throw new Error(`server exited early (${ex.code}/${ex.signal}): ${Buffer.concat(stderr)}`);
    throw err;
  }
  // "chat server listening on HOST:PORT[, PROXY protocol on HOST:PORT] (...)"
  const m = /^chat server listening on \S+:(\d+)(?:, PROXY protocol on \S+:(\d+))? \(/.exec(line);
  if (!m) throw new Error(`unexpected startup line ${JSON.stringify(line)}`);
  const port = Number(m[1]);
  const proxyPort = m[2] === undefined ? null : Number(m[2]);
  return { proc, port, proxyPort, log, exited, stderr: () => Buffer.concat(stderr).toString() };
}

// Opens a TCP client; `id` is the id the server gives it (its own address as
// seen by the server). The socket is destroyed when the test ends.
async function connect(t, port, { name = 'client', allowHalfOpen = false } = {}) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
  const c = {
    socket,
    log: new LineLog(name),
    id: null,
    closed: null,
    send(text) {
      socket.write(text);
    },
    say(line) {
      socket.write(`${line}\n`);
    },
    waitFor(match, opts) {
      return c.log.waitFor(match, opts);
    },
  };
  const splitter = new LineSplitter((l) => c.log.add(l));
  socket.on('data', (d) => splitter.push(d));
  socket.on('error', () => {});
  c.closed = new Promise((resolve) => socket.on('close', () => {
    c.log.end();
    resolve();
  }));
  t.after(() => socket.destroy());
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  c.id = `127.0.0.1:${socket.localPort}`;
  return c;
}

// Connects clients one after another and waits until the server has logged
// each join, so every earlier client is known to see later joins.
async function connectAll(t, srv, names) {
  const out = [];
  for (const name of names) {
    const c = await connect(t, srv.port, { name });
    await srv.log.waitFor(`${c.id} join`);
    out.push(c);
  }
  return out;
}

// Resolves if the promise settles within ms, rejects otherwise.
function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { SERVER, startServer, connect, connectAll, within, delay, LineSplitter, LineLog };
