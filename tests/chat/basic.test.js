'use strict';
// Join / broadcast / leave / disconnect behaviour of the chat server.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, connectAll, within } = require('./helpers');

test('join is announced to every other client, not to the joiner', async (t) => {
  const srv = await startServer(t);
  const [a, b] = await connectAll(t, srv, ['a', 'b']);
  await a.waitFor(`${b.id} join`);

  const c = await connect(t, srv.port, { name: 'c' });
  await a.waitFor(`${c.id} join`);
  await b.waitFor(`${c.id} join`);

  // b joined after a: b was not told about a, and c hears about nobody
  // (not even itself). a's marker is ordered after anything sent before it.
  a.say('marker');
  await c.waitFor(`${a.id}: marker`);
  await b.waitFor(`${a.id}: marker`);
  assert.deepEqual(b.log.lines, [`${c.id} join`, `${a.id}: marker`]);
  assert.deepEqual(c.log.lines, [`${a.id}: marker`]);
  assert.deepEqual(a.log.lines, [`${b.id} join`, `${c.id} join`]);
});

test('a line is broadcast as "<id>: <line>" to the others, never to the sender', async (t) => {
  const srv = await startServer(t);
  const [a, b, c] = await connectAll(t, srv, ['a', 'b', 'c']);
  await a.waitFor(`${c.id} join`);
  await b.waitFor(`${c.id} join`);

  a.say('hello there');
  await b.waitFor(`${a.id}: hello there`);
  await c.waitFor(`${a.id}: hello there`);

  // b speaks after a; once a has b's line, a would already have its own line
  // if the server echoed it (a single connection is delivered in order).
  b.say('marker');
  await a.waitFor(`${b.id}: marker`);
  await c.waitFor(`${b.id}: marker`);
  assert.deepEqual(a.log.lines, [`${b.id} join`, `${c.id} join`, `${b.id}: marker`]);
  assert.deepEqual(c.log.lines, [`${a.id}: hello there`, `${b.id}: marker`]);
  assert.deepEqual(b.log.lines, [`${c.id} join`, `${a.id}: hello there`]);
});

test('"leave" disconnects the sender and announces "<id> has left"', async (t) => {
  const srv = await startServer(t);
  const [a, b, c] = await connectAll(t, srv, ['a', 'b', 'c']);
  await a.waitFor(`${c.id} join`);

  b.send('  leave \r\n'); // trimmed, CRLF accepted
  await within(2000, b.closed, 'server closes the leaving client');
  await a.waitFor(`${b.id} has left`);
  await c.waitFor(`${b.id} has left`);
  assert.ok(!a.log.lines.some((l) => l.includes('leave')), 'the leave command is not broadcast');

  a.say('after leave');
  await c.waitFor(`${a.id}: after leave`);
  await srv.log.waitFor(`${b.id} has left (leave)`);
});

test('a client that disconnects without "leave" is removed and announced', async (t) => {
  const srv = await startServer(t);
  const [a, b, c, d] = await connectAll(t, srv, ['a', 'b', 'c', 'd']);
  await a.waitFor(`${d.id} join`);
  await b.waitFor(`${d.id} join`);

  c.socket.resetAndDestroy(); // RST
  d.socket.end(); // FIN
  await a.waitFor(`${c.id} has left`);
  await a.waitFor(`${d.id} has left`);
  await b.waitFor(`${c.id} has left`);
  await b.waitFor(`${d.id} has left`);

  // Later broadcasts still work and do not trip over the closed sockets.
  a.say('still here');
  await b.waitFor(`${a.id}: still here`);
  b.say('me too');
  await a.waitFor(`${b.id}: me too`);
  assert.equal(srv.proc.exitCode, null, 'server still running');
  await srv.log.waitFor(new RegExp(`^${c.id.replace(/\./g, '\\.')} has left \\(`));
});

test('"shutdown" from a client is an ordinary chat line', async (t) => {
  const srv = await startServer(t);
  const [a, b, c] = await connectAll(t, srv, ['a', 'b', 'c']);
  await a.waitFor(`${c.id} join`);

  a.say('shutdown');
  await b.waitFor(`${a.id}: shutdown`);
  await c.waitFor(`${a.id}: shutdown`);

  b.say('are we still up?');
  await a.waitFor(`${b.id}: are we still up?`);
  await c.waitFor(`${b.id}: are we still up?`);
  assert.equal(srv.proc.exitCode, null);
  for (const x of [a, b, c]) assert.equal(x.socket.destroyed, false);
  assert.ok(!srv.log.lines.some((l) => /shutting down|stopped/.test(l)));
});

test('logs exactly one line per join and per leave, never message contents', async (t) => {
  const srv = await startServer(t);
  const [a, b] = await connectAll(t, srv, ['a', 'b']);
  await a.waitFor(`${b.id} join`);
  a.say('top secret words');
  await b.waitFor(`${a.id}: top secret words`);
  b.say('leave');
  await a.waitFor(`${b.id} has left`);
  a.socket.destroy();
  await srv.log.waitFor(new RegExp(`^${a.id.replace(/\./g, '\\.')} has left`));

  const lines = srv.log.lines.slice(1); // after the startup line
  assert.deepEqual(lines, [
    `${a.id} join`,
    `${b.id} join`,
    `${b.id} has left (leave)`,
    `${a.id} has left (disconnected)`,
  ]);
  assert.ok(!srv.log.lines.some((l) => l.includes('secret')));
});

test('invalid configuration is refused at startup', async (t) => {
  await assert.rejects(startServer(t, { CHAT_PORT: 'abc' }), /exited early \(1\/null\).*CHAT_PORT/s);
  await assert.rejects(startServer(t, { CHAT_SHUTDOWN_GRACE_MS: '-1' }), /CHAT_SHUTDOWN_GRACE_MS/);
});
