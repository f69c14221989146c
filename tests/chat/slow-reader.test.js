'use strict';
// A client that stops reading must be dropped without stalling the others.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connectAll, within } = require('./helpers');

test('a slow reader is dropped and the others keep receiving promptly', async (t) => {
  const srv = await startServer(t, {
    CHAT_MAX_LINE_BYTES: '65536',
    CHAT_MAX_QUEUE_BYTES: '262144',
  });
  const [observer, flooder, slow] = await connectAll(t, srv, ['observer', 'flooder', 'slow']);
  slow.socket.pause(); // never reads: kernel buffers fill, then the server queue
  await observer.waitFor(`${slow.id} join`);
  await flooder.waitFor(`${slow.id} join`);

  const payload = 'f'.repeat(60000);
  const bytesPerRound = 1 << 20; // ~1 MiB per round, 17 lines
  const linesPerRound = Math.ceil(bytesPerRound / payload.length);
  let dropped = false;
  const droppedSeen = observer.waitFor(`${slow.id} has left`, { timeout: 30000 }).then(() => {
    dropped = true;
  });
  let sent = 0;
  for (let round = 0; round < 64 && !dropped; round++) {
    for (let i = 0; i < linesPerRound; i++) flooder.say(`${payload} ${sent++}`);
    // Every round must reach the observer quickly even while `slow` is stuck.
    const last = `${flooder.id}: ${payload} ${sent - 1}`;
    await observer.waitFor(last, { timeout: 2000, from: Math.max(0, observer.log.lines.length - linesPerRound) });
  }
  t.diagnostic(`flood stopped after ${sent} lines of ${payload.length} bytes`);
  await within(2000, droppedSeen, 'slow reader dropped');
  assert.ok(dropped, `slow reader not dropped after ${sent} lines of ${payload.length} bytes`);
  await srv.log.waitFor(`${slow.id} has left (slow reader)`);

  // The room keeps working after the drop.
  const t0 = Date.now();
  flooder.say('after the drop');
  await observer.waitFor(`${flooder.id}: after the drop`, { timeout: 1000 });
  assert.ok(Date.now() - t0 < 1000);
  observer.say('hello flooder');
  await flooder.waitFor(`${observer.id}: hello flooder`, { timeout: 1000 });

  // The dropped client's connection really is closed by the server.
  slow.socket.resume();
  await within(5000, slow.closed, 'slow reader connection closed');
  assert.ok(!slow.log.lines.includes(`${flooder.id}: after the drop`));
  assert.equal(srv.proc.exitCode, null);
});
