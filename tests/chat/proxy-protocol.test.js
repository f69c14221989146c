'use strict';
// CHAT_PROXY_PORT: a second listener for the load balancer, where the id
// comes from the PROXY v1 header (nginx `proxy_protocol on`) and connections
// without a valid header are closed. CHAT_PORT stays plain TCP: there the id is
// always the TCP peer and a PROXY header is an ordinary chat line.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, within, delay } = require('./helpers');

const ON = { CHAT_PROXY_PORT: '0' };

// Connects to the PROXY port and sends a header; resolves once the server
// logged the join.
async function proxied(t, srv, header, name, expectId) {
  const c = await connect(t, srv.proxyPort, { name });
  c.send(header);
  await srv.log.waitFor(`${expectId} join`);
  c.id = expectId;
  return c;
}

test('the id is the client address from the PROXY header', async (t) => {
  const srv = await startServer(t, ON);
  const a = await proxied(t, srv, 'PROXY TCP4 203.0.113.7 10.0.0.1 51234 30000\r\n', 'a', '203.0.113.7:51234');

  // Header and first chat line in one write; TCP6 ids are bracketed.
  const b = await connect(t, srv.proxyPort, { name: 'b' });
  b.send('PROXY TCP6 2001:db8::5 2001:db8::1 40000 30000\r\nhello from six\n');
  await a.waitFor('[2001:db8::5]:40000 join');
  await a.waitFor('[2001:db8::5]:40000: hello from six');

  a.say('hi six');
  await b.waitFor('203.0.113.7:51234: hi six');
  assert.ok(srv.log.lines.includes('[2001:db8::5]:40000 join'));
  assert.ok(!srv.log.lines.some((l) => l.startsWith('127.0.0.1')), 'the proxy address is not used as id');
});

test('join is announced only once the header is complete', async (t) => {
  const srv = await startServer(t, ON);
  const a = await proxied(t, srv, 'PROXY TCP4 192.0.2.1 10.0.0.1 1111 30000\r\n', 'a', '192.0.2.1:1111');
  const b = await proxied(t, srv, 'PROXY TCP4 192.0.2.2 10.0.0.1 2222 30000\r\n', 'b', '192.0.2.2:2222');
  await a.waitFor(`${b.id} join`);

  const c = await connect(t, srv.proxyPort, { name: 'c' });
  c.socket.setNoDelay(true);
  c.send('PROXY TCP4 198.51.');
  await delay(30);
  b.say('marker'); // a gets this; a join for c must not have come first
  await a.waitFor(`${b.id}: marker`);
  assert.ok(!a.log.lines.some((l) => l.startsWith('198.51.100.9')));
  c.send('100.9 10.0.0.1 3333 30000\r\n');
  await a.waitFor('198.51.100.9:3333 join');
});

test('PROXY UNKNOWN falls back to the connection address', async (t) => {
  const srv = await startServer(t, ON);
  const a = await proxied(t, srv, 'PROXY TCP4 192.0.2.1 10.0.0.1 1111 30000\r\n', 'a', '192.0.2.1:1111');
  const u = await connect(t, srv.proxyPort, { name: 'u' });
  u.send('PROXY UNKNOWN\r\n');
  await a.waitFor(`127.0.0.1:${u.socket.localPort} join`);
});

const BAD = [
  ['no header at all', 'hello\n', 'missing PROXY header'],
  ['bad address', 'PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n', 'bad address in PROXY header'],
  ['v6 address in TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n', 'bad address in PROXY header'],
  ['bad port', 'PROXY TCP4 192.0.2.1 10.0.0.1 70000 2\r\n', 'bad port in PROXY header'],
  ['missing field', 'PROXY TCP4 192.0.2.1 10.0.0.1 1\r\n', 'malformed PROXY header'],
  ['LF without CR', 'PROXY TCP4 192.0.2.1 10.0.0.1 1 2\n', 'header not terminated by CRLF'],
  ['unknown family', 'PROXY UDP4 192.0.2.1 10.0.0.1 1 2\r\n', 'unsupported PROXY protocol family'],
  ['longer than 107 bytes', `PROXY TCP6 ${'1'.repeat(120)}`, 'PROXY header too long'],
];

for (const [what, header, reason] of BAD) {
  test(`a malformed header is rejected and logged: ${what}`, async (t) => {
    const srv = await startServer(t, ON);
    const a = await proxied(t, srv, 'PROXY TCP4 192.0.2.1 10.0.0.1 1111 30000\r\n', 'a', '192.0.2.1:1111');
    const bad = await connect(t, srv.proxyPort, { name: 'bad' });
    const port = bad.socket.localPort;
    bad.send(header);
    await within(2000, bad.closed, 'server closes the connection');
    const { line } = await srv.log.waitFor(new RegExp(`^reject 127\\.0\\.0\\.1:${port}: `));
    assert.equal(line, `reject 127.0.0.1:${port}: ${reason}`);
    // Nobody was told about it and the room still works.
    const b = await proxied(t, srv, 'PROXY TCP4 192.0.2.2 10.0.0.1 2222 30000\r\n', 'b', '192.0.2.2:2222');
    await a.waitFor(`${b.id} join`);
    assert.deepEqual(a.log.lines, [`${b.id} join`]);
    assert.ok(!srv.log.lines.some((l) => /^127\.0\.0\.1:\d+ (join|has left)/.test(l)));
  });
}

test('a connection that sends no complete header in time is closed', async (t) => {
  const srv = await startServer(t, { ...ON, CHAT_PROXY_HEADER_TIMEOUT_MS: '300' });
  const silent = await connect(t, srv.proxyPort, { name: 'silent' });
  const partial = await connect(t, srv.proxyPort, { name: 'partial' });
  const ports = [silent.socket.localPort, partial.socket.localPort];
  partial.send('PROXY TCP4 192.0.2.1');
  const t0 = Date.now();
  await within(2000, Promise.all([silent.closed, partial.closed]), 'idle connections closed');
  assert.ok(Date.now() - t0 >= 250, 'not before the timeout');
  for (const p of ports) await srv.log.waitFor(`reject 127.0.0.1:${p}: no PROXY header within 300 ms`);
});

test('a connection closed before sending anything (TCP probe) is not logged', async (t) => {
  const srv = await startServer(t, ON);
  const probe = await connect(t, srv.proxyPort, { name: 'probe' });
  const probePort = probe.socket.localPort;
  probe.socket.end();
  await probe.closed;
  const a = await proxied(t, srv, 'PROXY TCP4 192.0.2.1 10.0.0.1 1111 30000\r\n', 'a', '192.0.2.1:1111');
  a.socket.destroy();
  await srv.log.waitFor(`${a.id} has left (disconnected)`);
  assert.deepEqual(srv.log.lines.slice(1), [`${a.id} join`, `${a.id} has left (disconnected)`]);
  assert.ok(probePort > 0);
});

test('without CHAT_PROXY_PORT a PROXY line is an ordinary chat line', async (t) => {
  const srv = await startServer(t);
  const a = await connect(t, srv.port, { name: 'a' });
  await srv.log.waitFor(`${a.id} join`);
  const b = await connect(t, srv.port, { name: 'b' });
  await a.waitFor(`${b.id} join`);
  b.send('PROXY TCP4 203.0.113.7 10.0.0.1 51234 30000\r\n');
  await a.waitFor(`${b.id}: PROXY TCP4 203.0.113.7 10.0.0.1 51234 30000`);
});

test('with CHAT_PROXY_PORT set, CHAT_PORT still serves direct clients under their own address', async (t) => {
  const srv = await startServer(t, ON);
  assert.ok(srv.proxyPort > 0 && srv.proxyPort !== srv.port);
  const lb = await proxied(t, srv, 'PROXY TCP4 203.0.113.7 10.0.0.1 51234 30000\r\n', 'lb', '203.0.113.7:51234');

  // A direct client sends no header: it joins at once, named by its TCP peer.
  const direct = await connect(t, srv.port, { name: 'direct' });
  await srv.log.waitFor(`${direct.id} join`);
  await lb.waitFor(`${direct.id} join`);

  // Both kinds of clients share one room.
  direct.say('hello from the NodePort');
  await lb.waitFor(`${direct.id}: hello from the NodePort`);
  lb.say('hello from the LB');
  await direct.waitFor(`${lb.id}: hello from the LB`);
  assert.ok(!srv.log.lines.some((l) => l.startsWith('reject')));
});

test('a PROXY header sent to CHAT_PORT is not trusted: it is a chat line from the real address', async (t) => {
  const srv = await startServer(t, ON);
  const observer = await connect(t, srv.port, { name: 'observer' });
  await srv.log.waitFor(`${observer.id} join`);

  const forger = await connect(t, srv.port, { name: 'forger' });
  const forgerPort = forger.socket.localPort;
  // The header and a line in the first packet, as a spoofing client would send them.
  forger.send('PROXY TCP4 198.51.100.66 10.0.0.1 4444 30000\r\nI am someone else\n');
  await observer.waitFor(`${forger.id} join`);
  await observer.waitFor(`${forger.id}: PROXY TCP4 198.51.100.66 10.0.0.1 4444 30000`);
  await observer.waitFor(`${forger.id}: I am someone else`);
  assert.equal(forger.id, `127.0.0.1:${forgerPort}`);
  assert.ok(!observer.log.lines.some((l) => l.startsWith('198.51.100.66')), 'the forged address is never an id');
  assert.ok(!srv.log.lines.some((l) => l.includes('198.51.100.66')));
});

test('the PROXY port itself cannot be used without a header', async (t) => {
  const srv = await startServer(t, ON);
  const observer = await connect(t, srv.port, { name: 'observer' });
  await srv.log.waitFor(`${observer.id} join`);
  const plain = await connect(t, srv.proxyPort, { name: 'plain' });
  const p = plain.socket.localPort;
  plain.say('hello without a header');
  await within(2000, plain.closed, 'server closes the connection');
  await srv.log.waitFor(`reject 127.0.0.1:${p}: missing PROXY header`);
  assert.deepEqual(observer.log.lines, []);
});

test('PROXY settings are checked at startup', async (t) => {
  await assert.rejects(startServer(t, { CHAT_PROXY_PORT: 'x' }), /CHAT_PROXY_PORT="x" is not a non-negative integer/);
  await assert.rejects(startServer(t, { CHAT_PROXY_PORT: '70000' }), /CHAT_PROXY_PORT=70000 is out of range/);
  await assert.rejects(
    startServer(t, { CHAT_PORT: '31999', CHAT_PROXY_PORT: '31999' }),
    /CHAT_PROXY_PORT=31999 must differ from CHAT_PORT/,
  );
  // The PROXY protocol cannot be switched on for CHAT_PORT.
  await assert.rejects(startServer(t, { CHAT_PROXY_PROTOCOL: '1' }), /CHAT_PROXY_PROTOCOL is not a setting/);
});
