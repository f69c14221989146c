'use strict';
// SIGTERM / SIGINT: announce, close gracefully, exit 0 within the grace period
// (CHAT_SHUTDOWN_GRACE_MS, 1 s by default, as in the rendered Deployment).

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer, connect, connectAll, within, delay } = require('./helpers');

// Resolves with the error code of a connection attempt, or null if it connected.
function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.on('error', (err) => resolve(err.code));
  });
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal} tells every client, closes them and exits 0`, async (t) => {
    const srv = await startServer(t, { CHAT_SHUTDOWN_GRACE_MS: '3000' });
    const [a, b, c] = await connectAll(t, srv, ['a', 'b', 'c']);
    await a.waitFor(`${c.id} join`);
    a.say('last words');
    const t0 = Date.now();
    srv.proc.kill(signal);

    for (const x of [a, b, c]) {
      await x.waitFor('server shutting down');
      await within(2000, x.closed, `${x.log.name} closed by the server`);
    }
    // Cooperative clients close at once: no need to wait for the deadline.
    const { code, signal: sig, at } = await within(3000, srv.exited, 'server exit');
    assert.equal(code, 0);
    assert.equal(sig, null);
    assert.ok(at - t0 < 1500, `exited after ${at - t0} ms`);

    // What was said before the signal is still delivered, before the notice.
    assert.deepEqual(b.log.lines.slice(-2), [`${a.id}: last words`, 'server shutting down']);
    // Nobody is told that the others "left" during a shutdown.
    assert.ok(!a.log.lines.some((l) => l.endsWith('has left')));
    for (const x of [a, b, c]) assert.ok(srv.log.lines.includes(`${x.id} has left (shutdown)`));
    assert.match(srv.log.lines.at(-1), /^chat server stopped/);
  });
}

test('clients that do not close are cut off at the grace deadline, exit is still 0', async (t) => {
  const grace = 600;
  const srv = await startServer(t, { CHAT_SHUTDOWN_GRACE_MS: String(grace) });
  // allowHalfOpen: this client does not answer the server's FIN.
  const stubborn = await connect(t, srv.port, { name: 'stubborn', allowHalfOpen: true });
  await srv.log.waitFor(`${stubborn.id} join`);
  const ended = new Promise((resolve) => stubborn.socket.once('end', resolve));
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  await stubborn.waitFor('server shutting down');
  await within(1000, ended, 'FIN from the server'); // graceful end first

  const { code, at } = await within(grace + 2000, srv.exited, 'server exit');
  assert.equal(code, 0);
  const took = at - t0;
  assert.ok(took >= grace - 50, `waited for the grace period (${took} ms)`);
  assert.ok(took < grace + 1000, `exited soon after the deadline (${took} ms)`);
});

test('the listener is closed as soon as shutdown starts', async (t) => {
  const srv = await startServer(t, { CHAT_SHUTDOWN_GRACE_MS: '2000' });
  const stubborn = await connect(t, srv.port, { name: 'stubborn', allowHalfOpen: true });
  await srv.log.waitFor(`${stubborn.id} join`);
  srv.proc.kill('SIGTERM');
  await stubborn.waitFor('server shutting down'); // server is draining now
  assert.equal(await tryConnect(srv.port), 'ECONNREFUSED');
  assert.equal(srv.proc.exitCode, null, 'still within the grace period');
});

test('with the default grace, an idle client that never reads or closes gets the goodbye and the server exits within 2 s', async (t) => {
  const srv = await startServer(t); // CHAT_SHUTDOWN_GRACE_MS not set: the default bound
  assert.match(srv.log.lines[0], /shutdown_grace_ms=1000\)$/);
  const polite = await connect(t, srv.port, { name: 'polite' });
  await srv.log.waitFor(`${polite.id} join`);
  // allowHalfOpen: it ignores the server's FIN; pause(): it reads nothing.
  const idle = await connect(t, srv.port, { name: 'idle', allowHalfOpen: true });
  idle.socket.pause();
  await polite.waitFor(`${idle.id} join`);

  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code, signal, at } = await within(3000, srv.exited, 'server exit');
  assert.equal(code, 0);
  assert.equal(signal, null);
  const took = at - t0;
  assert.ok(took < 2000, `exited after ${took} ms`);
  assert.ok(took >= 900, `the idle client got the grace period to close (${took} ms)`);
  assert.match(srv.log.lines.at(-1), /^chat server stopped \(/);

  // The goodbye reached both: the idle client finds it once it reads again.
  await within(1000, polite.waitFor('server shutting down'), 'goodbye to the polite client');
  const ended = new Promise((resolve) => idle.socket.once('end', resolve));
  idle.socket.resume();
  await idle.waitFor('server shutting down', { timeout: 1000 });
  await within(1000, ended, 'end of stream from the server');
});

test('a reader stuck with megabytes queued cannot hold up the shutdown', async (t) => {
  const lineBytes = 256 * 1024;
  const srv = await startServer(t, {
    CHAT_MAX_LINE_BYTES: String(lineBytes),
    CHAT_MAX_QUEUE_BYTES: String(256 * 1024 * 1024), // never dropped as a slow reader
  });
  const [observer, flooder, stuck] = await connectAll(t, srv, ['observer', 'flooder', 'stuck']);
  stuck.socket.pause();
  await observer.waitFor(`${stuck.id} join`);
  // 32 MiB: far more than the kernel buffers of the stuck connection hold, so
  // most of it waits in the server's queue for that client.
  const payload = 's'.repeat(lineBytes - 16);
  const lines = 128;
  for (let i = 0; i < lines; i++) flooder.say(`${payload} ${i}`);
  await observer.waitFor(`${flooder.id}: ${payload} ${lines - 1}`, { timeout: 10000 });
  await delay(50);

  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code, at } = await within(3000, srv.exited, 'server exit');
  assert.equal(code, 0);
  assert.ok(at - t0 < 2000, `exited after ${at - t0} ms`);
  t.diagnostic(`exited after ${at - t0} ms: ${srv.log.lines.at(-1)}`);
  await observer.waitFor('server shutting down', { timeout: 1000 });
  stuck.socket.resume();
  await within(5000, stuck.closed, 'stuck connection closed');
});

test('shutdown closes the PROXY port too and tells proxied and direct clients alike', async (t) => {
  const srv = await startServer(t, { CHAT_PROXY_PORT: '0' });
  const direct = await connect(t, srv.port, { name: 'direct' });
  await srv.log.waitFor(`${direct.id} join`);
  const lb = await connect(t, srv.proxyPort, { name: 'lb' });
  lb.send('PROXY TCP4 192.0.2.10 10.0.0.1 5555 30000\r\n');
  await direct.waitFor('192.0.2.10:5555 join');
  // Still in the PROXY handshake at shutdown: closed without a message.
  const pending = await connect(t, srv.proxyPort, { name: 'pending' });
  pending.send('PROXY TCP4 192.0.2');
  await delay(30);

  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  await direct.waitFor('server shutting down');
  await lb.waitFor('server shutting down');
  assert.equal(await tryConnect(srv.port), 'ECONNREFUSED');
  assert.equal(await tryConnect(srv.proxyPort), 'ECONNREFUSED');
  await within(1000, pending.closed, 'half-finished PROXY connection closed');
  assert.deepEqual(pending.log.lines, []);
  const { code, at } = await within(3000, srv.exited, 'server exit');
  assert.equal(code, 0);
  assert.ok(at - t0 < 1500, `exited after ${at - t0} ms`);
  assert.ok(srv.log.lines.includes('192.0.2.10:5555 has left (shutdown)'));
});
