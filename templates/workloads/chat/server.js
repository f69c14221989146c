'use strict';
// k8s-boot demo workload: line-based TCP chat server.
//
// Single file, no dependencies, CommonJS, Node.js >= 20 (20 to 24 tested).
// Run with `node server.js`; `node server.js --probe` is the Kubernetes
// readiness/liveness check (see probe()). Protocol, configuration and
// operations are described in docs/CHAT.md of the k8s-boot repository.

const fs = require('node:fs');
const net = require('node:net');

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

function fail(msg) {
  process.stderr.write(`chat: configuration error: ${msg}\n`);
  process.exit(1);
}

function intEnv(name, def, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const s = raw.trim();
  if (!/^[0-9]+$/.test(s)) fail(`${name}=${JSON.stringify(raw)} is not a non-negative integer`);
  const n = Number(s);
  if (n < min || n > max) fail(`${name}=${n} is out of range [${min}, ${max}]`);
  return n;
}

function isSet(name) {
  const raw = process.env[name];
  return raw !== undefined && raw.trim() !== '';
}

// CHAT_PORT is plain TCP: the TCP peer is the client, a PROXY header is an
// ordinary chat line. CHAT_PROXY_PORT (optional) is a second listener for the
// load balancer only: there every connection must start with a PROXY protocol
// v1 header, whose source address becomes the client's id. Keeping the two on
// separate ports means no client can claim another address on the plain port,
// whatever its source address looks like after NAT.
const PORT = intEnv('CHAT_PORT', 30000, 0, 65535);
const PROXY_PORT = isSet('CHAT_PROXY_PORT') ? intEnv('CHAT_PROXY_PORT', 0, 0, 65535) : null;
const HOST = (process.env.CHAT_HOST || '').trim() || '0.0.0.0';
const MAX_LINE = intEnv('CHAT_MAX_LINE_BYTES', 4096, 1, 16 * 1024 * 1024);
const MAX_QUEUE = intEnv('CHAT_MAX_QUEUE_BYTES', 1024 * 1024, 1, 1024 * 1024 * 1024);
// Connections held at once (clients, and proxied ones still owing their header): one more
// is told the server is full and closed, so a flood costs the pod a bounded amount.
const MAX_CLIENTS = intEnv('CHAT_MAX_CLIENTS', 1000, 1, 1000000);
// On shutdown, how long a client gets to close after the goodbye line before
// its connection is cut; also the bound for the whole shutdown.
const GRACE_MS = intEnv('CHAT_SHUTDOWN_GRACE_MS', 1000, 0, 3600 * 1000);
if (PROXY_PORT !== null && PROXY_PORT !== 0 && PROXY_PORT === PORT) {
  fail(`CHAT_PROXY_PORT=${PROXY_PORT} must differ from CHAT_PORT`);
}
if (isSet('CHAT_PROXY_PROTOCOL')) {
  fail('CHAT_PROXY_PROTOCOL is not a setting: the PROXY protocol is accepted only on CHAT_PROXY_PORT');
}

// PROXY protocol v1: the whole header, CRLF included, is at most 107 bytes.
const PROXY_MAX = 107;
const PROXY_TIMEOUT_MS = intEnv('CHAT_PROXY_HEADER_TIMEOUT_MS', 5000, 1, 3600 * 1000);
// Broadcast coalescing window (see flush()).
const FLUSH_DELAY_MS = 1;

const NL = 0x0a;
const CR = 0x0d;
const SHUTDOWN_MSG = 'server shutting down\n';
const TOO_LONG_MSG = Buffer.from(`error: line too long (max ${MAX_LINE} bytes)\n`);

// ---------------------------------------------------------------------------
// Probe: `node server.js --probe` exits 0 when every configured port has a
// listening socket in this network namespace, 1 otherwise. It reads
// /proc/net/tcp and /proc/net/tcp6 instead of connecting, because every
// connection to the chat port is a client announced to everyone. It needs
// nothing but node itself (no shell, grep, ss or netstat in the image).
// ---------------------------------------------------------------------------

const TCP_LISTEN = '0A';

function listeningPorts() {
  const ports = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(file, 'latin1');
    } catch {
      continue; // no IPv6 in this kernel or namespace
    }
    // "  sl  local_address rem_address   st ...", local_address is HEXADDR:HEXPORT
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== TCP_LISTEN) continue;
      const colon = f[1].lastIndexOf(':');
      if (colon !== -1) ports.add(parseInt(f[1].slice(colon + 1), 16));
    }
  }
  return ports;
}

function probe() {
  const want = PROXY_PORT === null ? [PORT] : [PORT, PROXY_PORT];
  if (want.includes(0)) fail('--probe needs fixed ports (CHAT_PORT and CHAT_PROXY_PORT must not be 0)');
  const have = listeningPorts();
  const missing = want.filter((p) => !have.has(p));
  if (missing.length > 0) {
    process.stderr.write(`chat: probe: nothing listens on TCP port ${missing.join(', ')}\n`);
    process.exit(1);
  }
  process.exit(0);
}

if (process.argv[2] === '--probe') probe();
else if (process.argv.length > 2) fail(`unknown argument ${JSON.stringify(process.argv[2])} (only --probe)`);

// ---------------------------------------------------------------------------
// Logging: one line per event, never message contents.
// ---------------------------------------------------------------------------

function log(line) {
  process.stdout.write(`${line}\n`);
}
process.stdout.on('error', () => {}); // a closed log pipe must not crash the chat

// ---------------------------------------------------------------------------
// Client ids
// ---------------------------------------------------------------------------

function formatId(address, port) {
  let a = String(address || 'unknown');
  if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
  if (a.includes(':')) a = `[${a}]`;
  return `${a}:${port}`;
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

const HEADER = 0; // waiting for the PROXY protocol header
const OPEN = 1; // joined, lines are broadcast
const CLOSING = 2; // left / dropped / shutting down; input is discarded

const clients = new Set(); // joined clients (state OPEN)
const conns = new Map(); // every accepted socket that is not closed yet -> client
let shuttingDown = false;

// Broadcast batching. Every message (and join/leave notice) is appended to a
// single batch; the batch is flushed at most once per millisecond as ONE
// buffer written to every client, minus the byte ranges that client produced
// itself. This turns N messages x M clients small writes into about M writes
// per flush. Accepting a connection costs one event loop turn, so the short
// timer (rather than setImmediate) is what lets a burst of joins or lines
// share a flush.
let batchParts = [];
let batchLen = 0;
let flushScheduled = false;

function enqueue(buf, from) {
  if (from) from.own.push(batchLen, batchLen + buf.length);
  batchParts.push(buf);
  batchLen += buf.length;
  if (!flushScheduled) {
    flushScheduled = true;
    setTimeout(flush, FLUSH_DELAY_MS);
  }
}

function flush() {
  flushScheduled = false;
  if (batchLen === 0) return;
  const data = batchParts.length === 1 ? batchParts[0] : Buffer.concat(batchParts, batchLen);
  const len = batchLen;
  batchParts = [];
  batchLen = 0;

  let slow = null;
  for (const c of clients) {
    let pos = c.batchStart;
    c.batchStart = 0;
    const own = c.own;
    const sock = c.socket;
    if (sock.destroyed) {
      own.length = 0; // 'close' is on its way and will remove the client
      continue;
    }
    if (own.length === 0) {
      if (pos === 0) sock.write(data);
      else if (pos < len) sock.write(data.subarray(pos));
    } else {
      sock.cork();
      for (let i = 0; i < own.length; i += 2) {
        if (own[i] > pos) sock.write(data.subarray(pos, own[i]));
        if (own[i + 1] > pos) pos = own[i + 1];
      }
      if (pos < len) sock.write(data.subarray(pos));
      sock.uncork();
      own.length = 0;
    }
    if (sock.writableLength > MAX_QUEUE) (slow || (slow = [])).push(c);
  }
  if (slow) for (const c of slow) drop(c, 'slow reader');
}

// ---------------------------------------------------------------------------
// Client lifecycle
// ---------------------------------------------------------------------------

function join(c, address, port) {
  c.id = formatId(address, port);
  c.prefix = Buffer.from(`${c.id}: `);
  c.state = OPEN;
  enqueue(Buffer.from(`${c.id} join\n`), null);
  c.batchStart = batchLen; // a new client gets only what follows its join
  clients.add(c);
  log(`${c.id} join`);
}

// Remove a joined client from the room: announce and log exactly once.
function part(c, reason) {
  if (!clients.delete(c)) return;
  c.state = CLOSING;
  c.parts = null;
  if (!shuttingDown) enqueue(Buffer.from(`${c.id} has left\n`), null);
  log(`${c.id} has left (${reason})`);
}

// Graceful close: send FIN after pending output, keep draining input until
// the peer closes, and destroy after the grace period at the latest.
function closeGracefully(c, finalText) {
  c.state = CLOSING;
  const sock = c.socket;
  if (sock.destroyed) return;
  if (finalText) sock.end(finalText);
  else sock.end();
  const t = setTimeout(() => sock.destroy(), Math.max(GRACE_MS, 1));
  t.unref();
  sock.once('close', () => clearTimeout(t));
}

function drop(c, reason) {
  part(c, reason);
  c.socket.destroy();
}

function reject(c, reason) {
  if (c.state !== HEADER) return;
  c.state = CLOSING;
  c.parts = null;
  if (c.headerTimer) clearTimeout(c.headerTimer);
  log(`reject ${c.peer}: ${reason}`);
  c.socket.destroy();
}

// ---------------------------------------------------------------------------
// PROXY protocol v1
// ---------------------------------------------------------------------------

const PORT_RE = /^(0|[1-9][0-9]{0,4})$/;

// Returns [address, port] of the real client, null for "UNKNOWN" (use the
// socket's own peer), or a string describing why the header is invalid.
function parseProxyHeader(line) {
  if (line.length === 0 || line[line.length - 1] !== CR) return 'header not terminated by CRLF';
  const text = line.toString('latin1', 0, line.length - 1);
  const f = text.split(' ');
  if (f[0] !== 'PROXY') return 'missing PROXY header';
  if (f[1] === 'UNKNOWN') return null;
  if (f.length !== 6) return 'malformed PROXY header';
  const [, proto, src, dst, sport, dport] = f;
  if (proto !== 'TCP4' && proto !== 'TCP6') return 'unsupported PROXY protocol family';
  const check = proto === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!check(src) || !check(dst)) return 'bad address in PROXY header';
  if (!PORT_RE.test(sport) || !PORT_RE.test(dport) || +sport > 65535 || +dport > 65535) {
    return 'bad port in PROXY header';
  }
  return [src, Number(sport)];
}

const PROXY_SIG = Buffer.from('PROXY ');

// Consumes header bytes from chunk; returns the offset where chat data starts
// or -1 if everything was consumed (or the connection was rejected).
function readHeader(c, chunk) {
  const nl = chunk.indexOf(NL);
  const take = nl === -1 ? chunk.length : nl;
  if (c.pendingLen + take > PROXY_MAX - 1) return reject(c, 'PROXY header too long'), -1;
  c.parts.push(Buffer.from(chunk.subarray(0, take)));
  c.pendingLen += take;
  const head = c.parts.length === 1 ? c.parts[0] : Buffer.concat(c.parts);
  const n = Math.min(head.length, PROXY_SIG.length);
  if (head.compare(PROXY_SIG, 0, n, 0, n) !== 0) return reject(c, 'missing PROXY header'), -1;
  if (nl === -1) {
    c.parts = [head];
    return -1;
  }
  c.parts = [];
  c.pendingLen = 0;
  const r = parseProxyHeader(head);
  if (typeof r === 'string') return reject(c, r), -1;
  clearTimeout(c.headerTimer);
  c.headerTimer = null;
  if (r === null) join(c, c.remoteAddress, c.remotePort);
  else join(c, r[0], r[1]);
  return nl + 1;
}

// ---------------------------------------------------------------------------
// Line framing
// ---------------------------------------------------------------------------

function onData(c, chunk) {
  if (c.state === CLOSING) return; // draining after leave/shutdown
  let start = 0;
  if (c.state === HEADER) {
    start = readHeader(c, chunk);
    if (start < 0) return;
  }
  while (start < chunk.length) {
    const nl = chunk.indexOf(NL, start);
    if (nl === -1) {
      if (c.discarding) return;
      const rest = chunk.length - start;
      // +1: the line may still end with "\r\n", the CR is not content.
      if (c.pendingLen + rest > MAX_LINE + 1) {
        tooLong(c);
        c.discarding = true;
        return;
      }
      c.parts.push(Buffer.from(chunk.subarray(start))); // copy: do not pin the chunk
      c.pendingLen += rest;
      return;
    }
    if (c.discarding) {
      c.discarding = false; // end of the refused line
      start = nl + 1;
      continue;
    }
    let line;
    if (c.pendingLen > 0) {
      c.parts.push(chunk.subarray(start, nl));
      line = Buffer.concat(c.parts);
      c.parts = [];
      c.pendingLen = 0;
    } else {
      line = chunk.subarray(start, nl);
    }
    start = nl + 1;
    onLine(c, line);
    if (c.state !== OPEN) return;
  }
}

function tooLong(c) {
  c.parts = [];
  c.pendingLen = 0;
  c.socket.write(TOO_LONG_MSG);
  if (c.socket.writableLength > MAX_QUEUE) drop(c, 'slow reader');
}

function isLeave(line) {
  return line.length <= 64 && line.toString('utf8').trim() === 'leave';
}

function onLine(c, line) {
  let n = line.length;
  if (n > 0 && line[n - 1] === CR) n -= 1;
  if (n > MAX_LINE) return tooLong(c);
  if (n === 0) return undefined; // blank lines are ignored
  const body = n === line.length ? line : line.subarray(0, n);
  if (isLeave(body)) {
    part(c, 'leave');
    closeGracefully(c, null);
    return undefined;
  }
  const msg = Buffer.allocUnsafe(c.prefix.length + n + 1);
  c.prefix.copy(msg, 0);
  body.copy(msg, c.prefix.length);
  msg[msg.length - 1] = NL;
  enqueue(msg, c);
  return undefined;
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

// proxied: the connection came in on CHAT_PROXY_PORT and must start with a
// PROXY header; on CHAT_PORT the TCP peer is the client.
function onConnection(sock, proxied) {
  const { remoteAddress, remotePort } = sock;
  if (shuttingDown || !remoteAddress) {
    sock.destroy(); // draining, or the peer is already gone
    return;
  }
  if (conns.size >= MAX_CLIENTS) {
    refuseFull(sock);
    return;
  }
  sock.setNoDelay(true);
  sock.setKeepAlive(true, 60000);
  const c = {
    socket: sock,
    remoteAddress,
    remotePort,
    peer: formatId(remoteAddress, remotePort), // the TCP peer (the LB when proxied)
    id: '',
    prefix: null,
    state: proxied ? HEADER : OPEN,
    parts: [],
    pendingLen: 0,
    discarding: false,
    batchStart: 0,
    own: [],
    headerTimer: null,
    sawData: false,
  };
  conns.set(sock, c);
  let reason = 'disconnected';
  sock.on('data', (chunk) => {
    c.sawData = true;
    onData(c, chunk);
  });
  sock.on('error', (err) => {
    reason = `error: ${err.code || err.message}`;
  });
  sock.on('close', () => {
    conns.delete(sock);
    if (c.headerTimer) clearTimeout(c.headerTimer);
    if (c.state === HEADER) {
      c.state = CLOSING;
      // A connection that closes without sending anything is a TCP probe
      // (kubelet, load balancer health check): not worth a log line.
      if (c.sawData) log(`reject ${c.peer}: closed before PROXY header`);
    } else {
      part(c, reason);
    }
    if (shuttingDown && conns.size === 0) finish('all clients closed');
  });
  if (proxied) {
    c.headerTimer = setTimeout(() => reject(c, `no PROXY header within ${PROXY_TIMEOUT_MS} ms`), PROXY_TIMEOUT_MS);
  } else {
    join(c, remoteAddress, remotePort);
  }
}

// A connection over MAX_CLIENTS: one line, then closed; never a client, never announced.
// The refusals are counted and logged at most every 10 s (a flood must not flood the log).
const FULL_MSG = Buffer.from(`error: server full (max ${MAX_CLIENTS} connections)\n`);
let refused = 0;
let refusedTimer = null;
function refuseFull(sock) {
  sock.on('error', () => {});
  sock.end(FULL_MSG);
  // A peer that never closes its side is cut after a second.
  sock.setTimeout(1000, () => sock.destroy());
  refused++;
  if (refusedTimer) return;
  refusedTimer = setTimeout(() => {
    log(`refused ${refused} connection(s): server full (max_clients=${MAX_CLIENTS})`);
    refused = 0;
    refusedTimer = null;
  }, 10000);
  refusedTimer.unref();
}

function listen(port, proxied) {
  const srv = net.createServer({ noDelay: true }, (sock) => onConnection(sock, proxied));
  srv.on('error', (err) => {
    process.stderr.write(`chat: server error: ${err.message}\n`);
    process.exit(1);
  });
  return new Promise((resolve) => {
    srv.listen({ port, host: HOST }, () => resolve(srv));
  });
}

const servers = [];
Promise.all([listen(PORT, false), PROXY_PORT === null ? null : listen(PROXY_PORT, true)]).then(([plain, proxy]) => {
  servers.push(plain);
  if (proxy) servers.push(proxy);
  if (shuttingDown) {
    // A signal came while the other listener was still being set up.
    for (const s of servers) s.close();
    return;
  }
  const addr = (s) => {
    const a = s.address();
    return formatId(a.address, a.port);
  };
  log(
    `chat server listening on ${addr(plain)}` +
      (proxy ? `, PROXY protocol on ${addr(proxy)}` : '') +
      ` (max_line_bytes=${MAX_LINE} max_queue_bytes=${MAX_QUEUE} max_clients=${MAX_CLIENTS} shutdown_grace_ms=${GRACE_MS})`,
  );
});

// ---------------------------------------------------------------------------
// Shutdown (SIGTERM / SIGINT only; clients cannot shut the server down)
// ---------------------------------------------------------------------------

let finished = false;
function finish(why) {
  if (finished) return;
  finished = true;
  log(`chat server stopped (${why})`);
  process.exit(0);
}

function destroyAll() {
  const n = conns.size;
  for (const s of conns.keys()) s.destroy();
  return n;
}

function shutdown(signal) {
  if (shuttingDown) {
    const n = destroyAll();
    finish(`${signal} received again, ${n} connections closed immediately`);
    return;
  }
  shuttingDown = true;
  log(`received ${signal}, shutting down ${clients.size} clients (grace ${GRACE_MS} ms)`);
  for (const s of servers) s.close(); // refuse new connections from now on
  flush(); // deliver what was already said
  for (const [s, c] of conns) {
    if (c.state === OPEN) {
      part(c, 'shutdown');
      closeGracefully(c, SHUTDOWN_MSG);
    } else if (c.state === HEADER) {
      c.state = CLOSING;
      s.destroy(); // PROXY handshake not finished: nobody to tell
    }
  }
  if (conns.size === 0) {
    finish('no clients');
    return;
  }
  setTimeout(() => {
    const n = destroyAll();
    finish(`grace period over, ${n} connections closed forcibly`);
  }, GRACE_MS).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
