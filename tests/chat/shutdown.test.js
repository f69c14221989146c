'use strict';
// SIGTERM / SIGINT: announce, close gracefully, exit 0 within the grace period.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer, connect, connectAll, within } = require('./helpers');

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
  const err = await new Promise((resolve) => {
    const s = net.connect({ port: srv.port, host: '127.0.0.1' });
    s.on('connect', () => {
      s.destroy();
      resolve(null);
    });
    s.on('error', resolve);
  });
  assert.equal(err && err.code, 'ECONNREFUSED');
  assert.equal(srv.proc.exitCode, null, 'still within the grace period');
});
