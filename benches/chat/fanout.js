#!/usr/bin/env node
'use strict';
// Fan-out benchmark for the k8s-boot chat server.
//
// Opens N concurrent TCP clients, waits until every join announcement has
// been delivered, then lets every client send one line. For each line it
// measures the time from the send to its LAST delivery among the other N-1
// clients, and reports deliveries, deliveries/s, latency percentiles and the
// server's peak RSS (VmHWM) when the server was started by this script.
//
//   node benches/chat/fanout.js                    # start a server, 1000 clients
//   node benches/chat/fanout.js --clients 200
//   node benches/chat/fanout.js --target 127.0.0.1:30000 [--server-pid PID]
//
// Run `node benches/chat/fanout.js --help` for every option. No dependencies.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const SERVER = path.resolve(__dirname, '../../templates/workloads/chat/server.js');

const HELP = `usage: node benches/chat/fanout.js [options]

  --clients N          concurrent clients (env CHAT_BENCH_CLIENTS, default 1000)
  --target HOST:PORT   use a running endpoint instead of starting a server
                       (env CHAT_BENCH_TARGET); e.g. an nginx in front of it
  --server-pid PID     with --target: read VmHWM/VmRSS of this local process
  --proxy-pids P,P     also report the CPU time these local processes (e.g.
                       the nginx workers in front of the server) used during
                       the measured rounds
  --size BYTES         payload bytes per line (default 32)
  --rounds R           measured rounds, every client sends one line per round
                       (default 1)
  --spread-ms MS       spread the sends of a round evenly over MS
                       milliseconds (default 0: all at once, a burst)
  --connect-batch K    connections opened in parallel (default 100)
  --timeout-ms MS      give up a phase after MS (default 60000)
  --json               print the result as one JSON object

A started server gets CHAT_HOST=127.0.0.1, CHAT_PORT=0 and inherits the other
CHAT_* variables from the environment.`;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  const o = {
    clients: Number(process.env.CHAT_BENCH_CLIENTS || 1000),
    target: process.env.CHAT_BENCH_TARGET || '',
    serverPid: 0,
    proxyPids: [],
    size: 32,
    rounds: 1,
    spreadMs: 0,
    connectBatch: 100,
    timeoutMs: 60000,
    json: false,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) die(`${name} needs a non-negative integer, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--clients': o.clients = num(a, next()); break;
      case '--target': o.target = next(); break;
      case '--server-pid': o.serverPid = num(a, next()); break;
      case '--proxy-pids': o.proxyPids = next().split(',').filter(Boolean).map((p) => num(a, p)); break;
      case '--size': o.size = num(a, next()); break;
      case '--rounds': o.rounds = num(a, next()); break;
      case '--spread-ms': o.spreadMs = num(a, next()); break;
      case '--connect-batch': o.connectBatch = num(a, next()); break;
      case '--timeout-ms': o.timeoutMs = num(a, next()); break;
      case '--json': o.json = true; break;
      case '-h': case '--help': console.log(HELP); process.exit(0); break;
      default: die(`unknown option ${a}\n\n${HELP}`);
    }
  }
  if (o.clients < 2) die('--clients must be at least 2');
  if (o.rounds < 1) die('--rounds must be at least 1');
  if (o.connectBatch < 1) o.connectBatch = 1;
  if (o.target) {
    const m = /^(.+):(\d+)$/.exec(o.target);
    if (!m) die(`--target must be HOST:PORT, got ${JSON.stringify(o.target)}`);
    o.host = m[1].replace(/^\[(.*)\]$/, '$1');
    o.port = Number(m[2]);
  }
  return o;
}

function die(msg, code = 2) {
  process.stderr.write(`fanout: ${msg}\n`);
  process.exit(code);
}

// ---------------------------------------------------------------------------
// File descriptor limit: N client sockets live in this process (and N server
// sockets in the server). Raise the soft limit by re-executing through the
// shell's `ulimit -n` when it is too low and the hard limit allows it.
// ---------------------------------------------------------------------------

function fdLimits() {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    const v = (s) => (s === 'unlimited' ? Infinity : Number(s));
    return { soft: v(m[1]), hard: v(m[2]) };
  } catch {
    return null;
  }
}

function ensureFdLimit(clients) {
  const need = clients + 128;
  const lim = fdLimits();
  if (!lim || lim.soft >= need) return;
  if (process.env.CHAT_BENCH_REEXEC) {
    die(`open file limit is ${lim.soft}, ${need} needed; raise it with \`ulimit -n ${need}\``);
  }
  if (lim.hard < need) {
    die(
      `open file limit is ${lim.soft} (hard ${lim.hard}) but ${clients} clients need about ${need}; ` +
        'raise the hard limit (e.g. /etc/security/limits.conf or `ulimit -Hn` as root) or use fewer --clients',
    );
  }
  const r = spawnSync(
    '/bin/sh',
    ['-c', `ulimit -n ${need} && exec "$0" "$@"`, process.execPath, __filename, ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, CHAT_BENCH_REEXEC: '1' } },
  );
  process.exit(r.status === null ? 1 : r.status);
}

// ---------------------------------------------------------------------------
// Server process (when no --target)
// ---------------------------------------------------------------------------

function startServer(timeoutMs) {
  const env = { ...process.env, CHAT_PORT: '0', CHAT_HOST: '127.0.0.1' };
  delete env.CHAT_BENCH_REEXEC;
  const proc = spawn(process.execPath, [SERVER], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    let found = false;
    const timer = setTimeout(() => reject(new Error('server did not start')), timeoutMs);
    // Keep draining stdout: the server logs one line per join/leave.
    proc.stdout.on('data', (d) => {
      if (found) return;
      buf += d;
      // "listening on HOST:PORT (...)" or "listening on HOST:PORT, PROXY protocol on ...":
      // the benchmark's clients use the plain port.
      const m = /listening on (\S+?):(\d+)[ ,]/.exec(buf);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolve({ proc, host: '127.0.0.1', port: Number(m[2]) });
      }
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (!found) reject(new Error(`server exited (${code}/${sig}) before listening`));
    });
  });
}

function procStatus(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
      return m ? Number(m[1]) : null;
    };
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime + stime
    return { hwmKb: kb('VmHWM'), rssKb: kb('VmRSS'), cpuTicks: ticks };
  } catch {
    return null;
  }
}

const CLK_TCK = 100; // Linux USER_HZ

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic

class Bench {
  constructor(o) {
    this.o = o;
    this.n = o.clients;
    this.sockets = [];
    this.joins = 0;
    this.lefts = 0;
    this.onProgress = null;
    this.readBuffer = Buffer.allocUnsafe(256 * 1024);
    this.resetRound();
  }

  resetRound() {
    this.sendAt = new Float64Array(this.n);
    this.lastAt = new Float64Array(this.n);
    this.count = new Uint32Array(this.n);
    this.deliveries = 0;
    this.selfDeliveries = 0;
    this.round = -1;
    this.stale = 0;
  }

  // Every message line ends with " <round>.<sender>": parse backwards from the
  // newline without building strings (the bench must not be the bottleneck).
  // `buf[0, end)` is the received data; it lives in a buffer shared by all
  // clients (see connectOne), so an incomplete last line is copied.
  onChunk(idx, buf, end, st) {
    const t = now();
    if (st.rest) {
      buf = Buffer.concat([st.rest, buf.subarray(0, end)]);
      end = buf.length;
      st.rest = null;
    }
    let pos = 0;
    while (pos < end) {
      const nl = buf.indexOf(10, pos);
      if (nl === -1 || nl >= end) break;
      let i = nl - 1;
      let sender = 0;
      let mul = 1;
      let c = 0;
      while (i > pos && (c = buf[i]) >= 48 && c <= 57) {
        sender += (c - 48) * mul;
        mul *= 10;
        i--;
      }
      if (mul > 1 && c === 46 /* . */) {
        let round = 0;
        mul = 1;
        i--;
        while (i > pos && (c = buf[i]) >= 48 && c <= 57) {
          round += (c - 48) * mul;
          mul *= 10;
          i--;
        }
        if (round !== this.round || sender >= this.n) this.stale++;
        else if (sender === idx) this.selfDeliveries++;
        else {
          this.count[sender]++;
          if (t > this.lastAt[sender]) this.lastAt[sender] = t;
          this.deliveries++;
        }
      } else if (nl - pos >= 5 && buf[nl - 1] === 110 && buf.toString('latin1', nl - 5, nl) === ' join') {
        this.joins++;
      } else if (nl - pos >= 5 && buf.toString('latin1', nl - 5, nl) === ' left') {
        this.lefts++;
      }
      pos = nl + 1;
    }
    if (pos < end) st.rest = Buffer.from(buf.subarray(pos, end));
    if (this.onProgress) this.onProgress();
  }

  connectOne(idx) {
    return new Promise((resolve, reject) => {
      const st = { rest: null };
      // Reads go straight into one reusable buffer (shared by every client of
      // this process: each read is parsed before the next one) instead of a
      // freshly allocated Buffer and a 'data' event per read. The server sees
      // exactly the same TCP traffic; the benchmark just spends less of the
      // shared CPU on its own receive path.
      const s = net.connect({
        host: this.o.host,
        port: this.o.port,
        onread: { buffer: this.readBuffer, callback: (n, buf) => this.onChunk(idx, buf, n, st) },
      });
      s.setNoDelay(true);
      s.once('connect', () => {
        this.sockets[idx] = s;
        resolve();
      });
      s.on('error', (err) => {
        if (err.code === 'EMFILE' || err.code === 'ENFILE') {
          die(`${err.code} (too many open files) at client ${idx}: raise the limit, e.g. \`ulimit -n ${this.n + 128}\``, 3);
        }
        if (!this.closing) reject(new Error(`client ${idx}: ${err.code || err.message}`));
      });
      s.on('close', () => {
        if (!this.closing) {
          this.unexpectedClose = (this.unexpectedClose || 0) + 1;
          if (this.onProgress) this.onProgress();
        }
      });
    });
  }

  async connectAll() {
    for (let i = 0; i < this.n; i += this.o.connectBatch) {
      const batch = [];
      for (let j = i; j < Math.min(this.n, i + this.o.connectBatch); j++) batch.push(this.connectOne(j));
      await Promise.all(batch);
    }
  }

  waitUntil(cond, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onProgress = null;
        reject(new Error(`timed out after ${this.o.timeoutMs} ms waiting for ${what()}`));
      }, this.o.timeoutMs);
      const check = () => {
        if (this.unexpectedClose) {
          clearTimeout(timer);
          this.onProgress = null;
          reject(new Error(`${this.unexpectedClose} client connection(s) closed by the server`));
        } else if (cond()) {
          clearTimeout(timer);
          this.onProgress = null;
          resolve();
        }
      };
      this.onProgress = check;
      check();
    });
  }

  async runRound(r) {
    this.resetRound();
    this.round = r;
    const pad = 'x'.repeat(Math.max(0, this.o.size - `bench  ${r}.${this.n}`.length));
    const lines = [];
    for (let i = 0; i < this.n; i++) lines.push(`bench ${pad} ${r}.${i}\n`);
    const expected = this.n * (this.n - 1);
    const done = this.waitUntil(
      () => this.deliveries >= expected,
      () => `${expected} deliveries (got ${this.deliveries})`,
    );
    const cpu0 = process.cpuUsage();
    const t0 = now();
    if (this.o.spreadMs === 0) {
      for (let i = 0; i < this.n; i++) {
        this.sendAt[i] = now();
        this.sockets[i].write(lines[i]);
      }
    } else {
      // Evenly spaced sends, in 1 ms timer slices.
      const perMs = this.n / this.o.spreadMs;
      let next = 0;
      await new Promise((resolve) => {
        const tick = () => {
          const due = Math.min(this.n, Math.ceil((now() - t0 + 1) * perMs));
          for (; next < due; next++) {
            this.sendAt[next] = now();
            this.sockets[next].write(lines[next]);
          }
          if (next < this.n) setTimeout(tick, 1);
          else resolve();
        };
        tick();
      });
    }
    await done;
    const cpu = process.cpuUsage(cpu0);
    // Every line reached every other client exactly once (a duplicate could
    // otherwise make up for a missing delivery in the total).
    const short = this.count.findIndex((c) => c !== this.n - 1);
    if (short !== -1) {
      throw new Error(`line of client ${short} was delivered ${this.count[short]} times, expected ${this.n - 1}`);
    }
    const lat = Array.from(this.sendAt, (s, i) => this.lastAt[i] - s).sort((a, b) => a - b);
    const pct = (p) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)];
    const last = Math.max(...this.lastAt);
    return {
      round: r,
      deliveries: this.deliveries,
      expected,
      selfDeliveries: this.selfDeliveries,
      stale: this.stale,
      sendMs: this.sendAt[this.n - 1] - this.sendAt[0],
      wallMs: last - t0,
      benchCpuMs: (cpu.user + cpu.system) / 1000,
      perSecond: this.deliveries / ((last - t0) / 1000),
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
      max: lat[lat.length - 1],
    };
  }

  close() {
    this.closing = true;
    for (const s of this.sockets) if (s) s.destroy();
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  ensureFdLimit(o.clients);

  let server = null;
  if (!o.target) {
    server = await startServer(o.timeoutMs);
    o.host = server.host;
    o.port = server.port;
  }
  const pid = server ? server.proc.pid : o.serverPid;
  const say = (m) => {
    if (!o.json) process.stderr.write(`${m}\n`);
  };

  const bench = new Bench(o);
  const cleanup = () => {
    bench.close();
    if (server && server.proc.exitCode === null) server.proc.kill('SIGTERM');
  };
  process.on('exit', () => {
    if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL');
  });

  try {
    say(`fanout: ${server ? 'started server' : 'target'} ${o.host}:${o.port}` + (pid ? ` (pid ${pid})` : ''));
    const c0 = now();
    await bench.connectAll();
    const joinsExpected = (o.clients * (o.clients - 1)) / 2;
    await bench.waitUntil(
      () => bench.joins >= joinsExpected,
      () => `${joinsExpected} join announcements (got ${bench.joins})`,
    );
    say(`fanout: ${o.clients} clients connected and joined in ${(now() - c0).toFixed(0)} ms`);
    const before = pid ? procStatus(pid) : null;
    const proxyTicks = () => o.proxyPids.reduce((t, p) => t + ((procStatus(p) || {}).cpuTicks || 0), 0);
    const proxyBefore = proxyTicks();

    const rounds = [];
    for (let r = 0; r < o.rounds; r++) {
      const res = await bench.runRound(r);
      rounds.push(res);
      say(
        `fanout: round ${r}: ${res.deliveries} deliveries in ${res.wallMs.toFixed(1)} ms ` +
          `(${Math.round(res.perSecond)}/s), latency p50 ${res.p50.toFixed(1)} ms ` +
          `p99 ${res.p99.toFixed(1)} ms max ${res.max.toFixed(1)} ms; bench CPU ${res.benchCpuMs.toFixed(0)} ms`,
      );
      if (res.selfDeliveries) throw new Error(`${res.selfDeliveries} lines were echoed to their sender`);
    }

    const after = pid ? procStatus(pid) : null;
    const proxyCpu = o.proxyPids.length ? (proxyTicks() - proxyBefore) / CLK_TCK : null;
    const all = rounds.map((r) => r.p99);
    const result = {
      clients: o.clients,
      target: `${o.host}:${o.port}`,
      startedServer: Boolean(server),
      size: o.size,
      spreadMs: o.spreadMs,
      rounds,
      totalDeliveries: rounds.reduce((a, r) => a + r.deliveries, 0),
      worstP99Ms: Math.max(...all),
      server: after
        ? {
            pid,
            vmHwmMiB: after.hwmKb / 1024,
            vmRssMiB: after.rssKb / 1024,
            cpuSecondsDuringRounds: (after.cpuTicks - before.cpuTicks) / CLK_TCK,
          }
        : null,
      proxyCpuSecondsDuringRounds: proxyCpu,
      benchCpuSeconds: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
      node: process.version,
    };
    if (o.json) {
      console.log(JSON.stringify(result));
    } else {
      const f = (x) => x.toFixed(1);
      const r0 = rounds[rounds.length - 1];
      console.log(`clients             ${o.clients} (${o.size}-byte lines, ${o.spreadMs ? `sends spread over ${o.spreadMs} ms` : 'burst: all send at once'})`);
      console.log(`total deliveries    ${result.totalDeliveries} over ${rounds.length} round(s)`);
      console.log(`deliveries/s        ${rounds.map((r) => Math.round(r.perSecond)).join(', ')}`);
      console.log(`latency p50         ${rounds.map((r) => f(r.p50)).join(', ')} ms`);
      console.log(`latency p99         ${rounds.map((r) => f(r.p99)).join(', ')} ms`);
      console.log(`latency max         ${rounds.map((r) => f(r.max)).join(', ')} ms`);
      console.log(`last round wall     ${f(r0.wallMs)} ms (sending took ${f(r0.sendMs)} ms)`);
      if (result.server) {
        console.log(`server peak RSS     ${f(result.server.vmHwmMiB)} MiB (VmHWM; now ${f(result.server.vmRssMiB)} MiB)`);
        console.log(`server CPU          ${result.server.cpuSecondsDuringRounds.toFixed(2)} s during the rounds`);
      } else {
        console.log('server peak RSS     n/a (pass --server-pid for a local server)');
      }
      if (proxyCpu !== null) console.log(`proxy CPU           ${proxyCpu.toFixed(2)} s during the rounds (${o.proxyPids.length} processes)`);
      console.log(`bench CPU           ${result.benchCpuSeconds.toFixed(2)} s (this process, all phases)`);
    }
  } catch (err) {
    cleanup();
    die(err.message, 1);
  }
  cleanup();
  if (server) {
    await new Promise((resolve) => {
      if (server.proc.exitCode !== null) resolve();
      else server.proc.once('exit', resolve);
    });
  }
}

main();
