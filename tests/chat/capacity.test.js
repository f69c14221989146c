'use strict';
// CHAT_MAX_CLIENTS: a connection over the cap is told the server is full and closed,
// without ever becoming a client; the clients already in keep chatting; a freed place is
// taken by the next connection.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, connectAll, within } = require('./helpers');

test('a connection over max_clients is refused with a line, and nobody hears of it', async (t) => {
  const srv = await startServer(t, { CHAT_MAX_CLIENTS: '2' });
  const [a, b] = await connectAll(t, srv, ['a', 'b']);
  await a.waitFor(`${b.id} join`);

  const extra = await connect(t, srv.port, { name: 'extra' });
  await extra.waitFor('error: server full (max 2 connections)');
  await within(3000, extra.closed, 'the refused connection is closed');
  extra.say('may I?');

  // a and b still talk; neither heard of the refused one.
  a.say('marker');
  await b.waitFor(`${a.id}: marker`);
  assert.deepEqual(b.log.lines, [`${a.id}: marker`]);
  assert.deepEqual(a.log.lines, [`${b.id} join`]);
  assert.ok(!srv.log.lines.some((l) => l.startsWith(`${extra.id} `)), srv.log.lines.join('\n'));

  // A freed place is taken by the next connection.
  b.say('leave');
  await a.waitFor(`${b.id} has left`);
  const c = await connect(t, srv.port, { name: 'c' });
  await a.waitFor(`${c.id} join`);
});

test('a refused flood is logged once, with its count', async (t) => {
  const srv = await startServer(t, { CHAT_MAX_CLIENTS: '1' });
  await connectAll(t, srv, ['a']);
  const flood = [];
  for (let i = 0; i < 20; i++) flood.push(connect(t, srv.port, { name: `f${i}` }));
  for (const f of await Promise.all(flood)) await within(3000, f.closed, 'refused');
  const { line } = await srv.log.waitFor(/^refused \d+ connection\(s\): server full/, { timeout: 15000 });
  assert.match(line, /^refused 20 connection\(s\): server full \(max_clients=1\)$/);
  assert.equal(srv.log.lines.filter((l) => l.startsWith('refused ')).length, 1);
});
