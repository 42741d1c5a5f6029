/** The structure of nginx's `ngx_stream_module` and `ngx_stream_core_module`: `stream` and its `server` blocks. */
import { defineDirective, type ConfModule } from '../conf/registry.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    stream: undefined;
  }
}

/** The `stream` block and its virtual servers. */
export const streamCoreModule: ConfModule = {
  name: 'ngx_stream_core_module',
  directives: [
    defineDirective({
      kind: 'block',
      name: 'stream',
      contexts: ['main'],
      args: [0],
      block: 'stream',
      unique: true,
      syntax: '{ ... }',
      summary: 'The TCP and UDP (L4) proxy: its servers and upstream groups.',
    }),
    defineDirective({
      kind: 'block',
      name: 'server',
      contexts: ['stream'],
      args: [0],
      block: 'stream_server',
      syntax: '{ ... }',
      summary: 'An L4 virtual server, chosen by the address a connection arrives on.',
    }),
  ],
};
