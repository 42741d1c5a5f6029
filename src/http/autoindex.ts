/**
 * nginx's `ngx_http_autoindex_module` listings, byte for byte: HTML (names cut at 50 columns,
 * sizes exact or rounded), JSON, JSONP and XML, directories first, then by name (strcmp order),
 * dot files left out. Names are byte strings (one UTF-16 unit per byte), as the rest of the
 * request is.
 */
import type { AutoindexFormat } from './static-module.js';

/** One directory entry. */
export interface AutoindexEntry {
  /** The name as bytes (latin1 string). */
  readonly name: string;
  readonly dir: boolean;
  readonly file: boolean;
  /** Seconds since the epoch. */
  readonly mtime: number;
  readonly size: number;
}

/** The listing settings of a location. */
export interface AutoindexSettings {
  readonly format: AutoindexFormat;
  readonly exactSize: boolean;
  readonly localtime: boolean;
}

const NAME_LEN = 50;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** ngx_http_autoindex_cmp_entries(): directories first, then strcmp() of the names. */
export function sortEntries(entries: AutoindexEntry[]): AutoindexEntry[] {
  return entries.sort((a, b) => {
    if (a.dir && !b.dir) return -1;
    if (!a.dir && b.dir) return 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
}

/** ngx_escape_html(): `<`, `>`, `&` and `"`. */
function escapeHtml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => (c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : '&quot;'));
}

// ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) keeps only RFC 3986's unreserved characters.
const URI_COMPONENT_KEEP = /[A-Za-z0-9\-._~]/;

function escapeUriComponent(bytes: string): string {
  let out = '';
  for (const c of bytes) {
    const code = c.charCodeAt(0);
    if (code < 0x80 && URI_COMPONENT_KEEP.test(c)) out += c;
    else out += `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function htmlSize(entry: AutoindexEntry, exact: boolean): string {
  if (exact) return entry.dir ? '                  -' : String(entry.size).padStart(19);
  if (entry.dir) return '      -';
  const length = entry.size;
  const G = 1024 * 1024 * 1024;
  const M = 1024 * 1024;
  let size: number;
  let scale = '';
  if (length > G - 1) {
    size = Math.floor(length / G) + (length % G > G / 2 - 1 ? 1 : 0);
    scale = 'G';
  } else if (length > M - 1) {
    size = Math.floor(length / M) + (length % M > M / 2 - 1 ? 1 : 0);
    scale = 'M';
  } else if (length > 9999) {
    size = Math.floor(length / 1024) + (length % 1024 > 511 ? 1 : 0);
    scale = 'K';
  } else {
    size = length;
  }
  return scale === '' ? ` ${String(size).padStart(6)}` : `${String(size).padStart(6)}${scale}`;
}

/**
 * A name's characters (each as its bytes) when the listing goes out as utf-8 and the name is valid
 * UTF-8 with a byte over 0x7f, as ngx_utf8_length() counts them; else undefined, and bytes count.
 */
function utf8Characters(name: string): string[] | undefined {
  if (!/[\x80-\xff]/.test(name)) return undefined;
  const bytes = Buffer.from(name, 'latin1');
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) return undefined;
  return Array.from(text, (c) => Buffer.from(c, 'utf8').toString('latin1'));
}

function htmlEntry(entry: AutoindexEntry, settings: AutoindexSettings, utf8: boolean): string {
  let line = `<a href="${escapeUriComponent(entry.name)}${entry.dir ? '/' : ''}">`;
  // ngx_http_autoindex_html(): with a utf-8 charset, names are counted and cut in characters.
  const characters = utf8 ? utf8Characters(entry.name) : undefined;
  const len = characters?.length ?? entry.name.length;
  if (len > NAME_LEN) {
    const cut = characters === undefined ? entry.name.slice(0, NAME_LEN - 3) : characters.slice(0, NAME_LEN - 3).join('');
    line += `${escapeHtml(cut)}..&gt;</a>`;
  } else {
    line += `${escapeHtml(entry.name)}${entry.dir ? '/' : ''}</a>`;
    const width = len + (entry.dir ? 1 : 0);
    if (NAME_LEN - width > 0) line += ' '.repeat(NAME_LEN - width);
  }
  const date = new Date(entry.mtime * 1000);
  const local = settings.localtime;
  const day = local ? date.getDate() : date.getUTCDate();
  const month = MONTHS[local ? date.getMonth() : date.getUTCMonth()] ?? '';
  const year = local ? date.getFullYear() : date.getUTCFullYear();
  const hour = local ? date.getHours() : date.getUTCHours();
  const minute = local ? date.getMinutes() : date.getUTCMinutes();
  line += ` ${pad2(day)}-${month}-${year} ${pad2(hour)}:${pad2(minute)} ${htmlSize(entry, settings.exactSize)}\r\n`;
  return line;
}

/** ngx_escape_json(): `"` and `\` escaped, control characters as \u00XX. */
function escapeJson(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (code <= 0x1f) out += `\\u00${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return out;
}

function xmlTime(mtime: number): string {
  const d = new Date(mtime * 1000);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}T${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}Z`;
}

/** The listing body (a byte string) of directory `uri`; `callback` for jsonp. */
export function renderAutoindex(uri: string, entries: readonly AutoindexEntry[], settings: AutoindexSettings, callback: string, utf8 = false): string {
  switch (settings.format) {
    case 'json':
    case 'jsonp': {
      const items = entries.map((e) => {
        const type = e.dir ? 'directory' : e.file ? 'file' : 'other';
        return `\r\n{ "name":"${escapeJson(e.name)}", "type":"${type}", "mtime":"${new Date(e.mtime * 1000).toUTCString()}"${e.file ? `, "size":${e.size}` : ''} }`;
      });
      const list = `[${items.join(',')}\r\n]`;
      return settings.format === 'jsonp' && callback !== '' ? `/* callback */\r\n${callback}(${list});` : list;
    }
    case 'xml': {
      let out = '<?xml version="1.0"?>\r\n<list>\r\n';
      for (const e of entries) {
        const type = e.dir ? 'directory' : e.file ? 'file' : 'other';
        out += `<${type} mtime="${xmlTime(e.mtime)}"${e.file ? ` size="${e.size}"` : ''}>${escapeHtml(e.name)}</${type}>\r\n`;
      }
      return `${out}</list>\r\n`;
    }
    default: {
      const title = escapeHtml(uri);
      let out = `<html>\r\n<head><title>Index of ${title}</title></head>\r\n<body>\r\n<h1>Index of ${title}</h1><hr><pre><a href="../">../</a>\r\n`;
      for (const entry of entries) out += htmlEntry(entry, settings, utf8);
      return `${out}</pre><hr></body>\r\n</html>\r\n`;
    }
  }
}

/** The jsonp callback from the `callback` argument (ngx_http_autoindex_jsonp_callback()); undefined when invalid (400). */
export function jsonpCallback(args: string, arg: (args: string, name: string) => string | undefined): string | undefined {
  const value = arg(args, 'callback') ?? '';
  if (value.length > 128) return undefined;
  if (!/^[A-Za-z0-9_.]*$/.test(value)) return undefined;
  return value;
}
