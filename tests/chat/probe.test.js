'use strict';
// `node server.js --probe`: the readiness/liveness check of the Deployment. It
// must find the listening sockets without connecting (a connection is a chat
// client) and without any program but node (the image may have no shell).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const net = require('node:net');
const { SERVER, startServer, connect } = require('./helpers');

// Runs the probe with exactly `env` (no PATH: it must not need other programs).
function probe(env) {
  const r = spawnSync(process.execPath, [SERVER, '--probe'], { env, encoding: 'utf8', timeout: 5000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

// A port with nothing listening on it (bound once, then released).
async function freePort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

test('the probe succeeds while both listeners are up, without connecting', async (t) => {
  const srv = await startServer(t, { CHAT_PROXY_PORT: '0' });
  const observer = await connect(t, srv.port, { name: 'observer' });
  await srv.log.waitFor(`${observer.id} join`);
  const env = { CHAT_PORT: String(srv.port), CHAT_PROXY_PORT: String(srv.proxyPort) };
  for (let i = 0; i < 3; i++) {
    const r = probe(env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
  }
  observer.say('still here');
  // Nothing else happened on the server: no join, no reject, no log line.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(srv.log.lines.slice(1), [`${observer.id} join`]);
  assert.deepEqual(observer.log.lines, []);
});

test('the probe fails when a configured port has no listener', async (t) => {
  const srv = await startServer(t);
  const free = await freePort();
  assert.equal(probe({ CHAT_PORT: String(srv.port) }).code, 0);
  const r = probe({ CHAT_PORT: String(srv.port), CHAT_PROXY_PORT: String(free) });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`nothing listens on TCP port ${free}\\b`));
  assert.equal(probe({ CHAT_PORT: String(free) }).code, 1);
});

test('the probe fails once the server has stopped', async (t) => {
  const srv = await startServer(t);
  assert.equal(probe({ CHAT_PORT: String(srv.port) }).code, 0);
  srv.proc.kill('SIGTERM');
  await srv.exited;
  assert.equal(probe({ CHAT_PORT: String(srv.port) }).code, 1);
});

test('the probe finds an IPv6 listener (/proc/net/tcp6)', async (t) => {
  let srv;
  try {
    srv = await startServer(t, { CHAT_HOST: '::1' });
  } catch (err) {
    t.skip(`no IPv6 loopback here: ${err.message.split('\n')[0]}`);
    return;
  }
  assert.equal(probe({ CHAT_PORT: String(srv.port) }).code, 0);
});

test('the probe refuses port 0 and bad settings', () => {
  const r = probe({ CHAT_PORT: '0' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--probe needs fixed ports/);
  assert.equal(probe({ CHAT_PORT: 'x' }).code, 1);
  const u = spawnSync(process.execPath, [SERVER, '--bogus'], { env: {}, encoding: 'utf8' });
  assert.equal(u.status, 1);
  assert.match(u.stderr, /unknown argument "--bogus"/);
});
