/** The diagnostics channels are part of the public surface: a program subscribes through src/index.ts. */
import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { diagnosticsChannels, upstreamConnectChannel } from '../../src/index.js';

describe('diagnostics channels from the library', () => {
  it('exports every channel under its hitless: name, the same Node channel a subscriber by name gets', () => {
    const names = Object.values(diagnosticsChannels).map((typed) => typed.channel.name);
    assert.deepEqual(names, [
      'hitless:upstream:connect', 'hitless:upstream:connectError', 'hitless:upstream:finish',
      'hitless:request:finish', 'hitless:reload', 'hitless:certificate:put', 'hitless:health:change', 'hitless:health:probe', 'hitless:tls:handshake',
    ]);
    for (const typed of Object.values(diagnosticsChannels)) assert.equal(typed.channel, channel(typed.channel.name));
    assert.equal(upstreamConnectChannel, diagnosticsChannels.upstreamConnect.channel);
  });
});
