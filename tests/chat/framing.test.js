'use strict';
// Line framing: split lines, several lines per packet, UTF-8, line limits.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connectAll, delay } = require('./helpers');

async function room(t, env, names = ['a', 'b', 'c']) {
  const srv = await startServer(t, env);
  const clients = await connectAll(t, srv, names);
  const last = clients[clients.length - 1];
  for (const c of clients.slice(0, -1)) await c.waitFor(`${last.id} join`);
  for (const c of clients) c.socket.setNoDelay(true); // one write, one segment
  return { srv, clients };
}

// Waits until `who` has seen a marker line sent by `via` after `prior` was
// sent: everything the server forwarded before the marker has arrived.
async function sync(via, who, text = `sync-${Math.random()}`) {
  via.say(text);
  await who.waitFor(`${via.id}: ${text}`);
}

test('a line split over two writes arrives whole', async (t) => {
  const { clients: [a, b, c] } = await room(t);
  a.send('hello, ');
  await delay(30); // let the first part reach the server on its own
  await sync(c, b); // the server has read and processed a's first part by now
  assert.ok(!b.log.lines.some((l) => l.startsWith(`${a.id}:`)), 'partial line must not be forwarded');
  a.send('world\n');
  await b.waitFor(`${a.id}: hello, world`);
  await c.waitFor(`${a.id}: hello, world`);
});

test('several lines in one write arrive as several messages, CRLF stripped', async (t) => {
  const { clients: [a, b] } = await room(t);
  a.send('one\ntwo\r\nthree\n');
  await b.waitFor(`${a.id}: three`);
  const got = b.log.lines.filter((l) => l.startsWith(`${a.id}:`));
  assert.deepEqual(got, [`${a.id}: one`, `${a.id}: two`, `${a.id}: three`]);
});

test('blank lines are ignored', async (t) => {
  const { clients: [a, b] } = await room(t);
  a.send('\n\r\n\nx\n');
  await b.waitFor(`${a.id}: x`);
  assert.deepEqual(b.log.lines.filter((l) => l.startsWith(`${a.id}:`)), [`${a.id}: x`]);
});

test('multi-byte UTF-8 split across writes is forwarded intact', async (t) => {
  const { clients: [a, b, c] } = await room(t);
  const text = 'héllo 世界 🎉 ok';
  const bytes = Buffer.from(`${text}\n`);
  const cut1 = bytes.indexOf(Buffer.from('世')) + 1; // inside a 3-byte char
  const cut2 = bytes.indexOf(Buffer.from('🎉')) + 2; // inside a 4-byte char
  a.send(bytes.subarray(0, cut1));
  await delay(20);
  a.send(bytes.subarray(cut1, cut2));
  await delay(20);
  a.send(bytes.subarray(cut2));
  await b.waitFor(`${a.id}: ${text}`);
  await c.waitFor(`${a.id}: ${text}`);
  assert.ok(!b.log.lines.some((l) => l.includes('\uFFFD')), 'no replacement characters');
});

test('an over-long line is refused, the sender stays connected', async (t) => {
  const { srv, clients: [a, b] } = await room(t, { CHAT_MAX_LINE_BYTES: '64' }, ['a', 'b']);
  a.say('x'.repeat(65));
  await a.waitFor('error: line too long (max 64 bytes)');

  // Exactly the limit is fine, with LF or CRLF.
  a.say('y'.repeat(64));
  a.send(`${'z'.repeat(64)}\r\n`);
  a.say('still connected');
  await b.waitFor(`${a.id}: still connected`);
  assert.deepEqual(b.log.lines.filter((l) => l.startsWith(`${a.id}:`)), [
    `${a.id}: ${'y'.repeat(64)}`,
    `${a.id}: ${'z'.repeat(64)}`,
    `${a.id}: still connected`,
  ]);
  assert.equal(a.log.lines.filter((l) => l.startsWith('error:')).length, 1);
  assert.equal(srv.proc.exitCode, null);
});

test('an unterminated over-long line is refused early and discarded up to the newline', async (t) => {
  const { clients: [a, b] } = await room(t, { CHAT_MAX_LINE_BYTES: '100' }, ['a', 'b']);
  // No newline yet: the refusal must come without waiting for the line end,
  // i.e. the server does not buffer the line.
  a.send('q'.repeat(150));
  await a.waitFor('error: line too long (max 100 bytes)');
  for (let i = 0; i < 20; i++) a.send('r'.repeat(1000)); // more of the same line
  a.send('\nafter the long one\n');
  await b.waitFor(`${a.id}: after the long one`);
  assert.deepEqual(b.log.lines.filter((l) => l.startsWith(`${a.id}:`)), [`${a.id}: after the long one`]);
  assert.equal(a.log.lines.filter((l) => l.startsWith('error:')).length, 1, 'one refusal per line');
});

test('the default line limit is 4096 bytes', async (t) => {
  const { clients: [a, b] } = await room(t, {}, ['a', 'b']);
  a.say('m'.repeat(4096));
  a.say('m'.repeat(4097));
  await a.waitFor('error: line too long (max 4096 bytes)');
  await sync(a, b);
  assert.deepEqual(
    b.log.lines.filter((l) => l.startsWith(`${a.id}: m`)).map((l) => l.length),
    [a.id.length + 2 + 4096],
  );
});
