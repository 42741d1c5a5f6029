/**
 * PCRE2 patterns, as nginx compiles them (`ngx_regex_compile()` in src/core/ngx_regex.c: 8-bit, no
 * UTF, C-locale tables, `PCRE2_CASELESS` for `~*`), translated into JavaScript patterns that match
 * the same byte strings with the same captures. The translation is token by token, so that what
 * PCRE and JavaScript read differently is spelled out for JavaScript: `.` and `\s` (JavaScript's
 * take `\r` out and put U+00A0 in), `$` (PCRE's also matches before a final newline), `\h`, `\v`,
 * POSIX classes, `\Q...\E`, `\x{hh}`, comments, inline options anywhere (`(?i)`, `(?s:...)`,
 * `(?x)`, `(?U)`) and caseless matching, which becomes explicit ASCII classes (`a` is `[Aa]`): PCRE
 * folds ASCII only in the C locale, and V8's linear-time engine cannot take the `i` flag.
 *
 * Unicode properties (`\p{N}`) become the set of bytes whose Latin-1 code point has the property,
 * as PCRE2 reads them without UTF (pcre-properties.ts).
 *
 * A PCRE construct JavaScript cannot express (atomic groups, possessive quantifiers, recursion,
 * conditionals, verbs, `\K`) is refused with nginx's `pcre2_compile() failed: ...` message, never
 * read as something else. See docs/regex.md.
 */
import { HitlessError } from './errors.js';
import { CASED_CATEGORIES, propertyName, propertyRanges } from './pcre-properties.js';
import { complement, DIGIT, emitSet, escapeUnit, foldCase, HSPACE, MAX_UNIT, NEWLINE, POSIX, SPACE, VSPACE, WORD, type Ranges } from './pcre-sets.js';

/**
 * The V8 flags under which a regex that backtracks too much is finished by V8's linear-time engine
 * (no backtracking) instead: workers run with them, so a configured pattern cannot hang a worker on
 * a hostile request. 50000 backtracks (V8's default) cost well under a millisecond.
 */
export const REGEXP_GUARD_V8_FLAGS: readonly string[] = Object.freeze([
  '--enable-experimental-regexp-engine-on-excessive-backtracks',
  '--regexp-backtracks-before-fallback=50000',
]);

/**
 * V8's linear engine unrolls counted repetitions and takes a pattern only while the product of the
 * nested repetition counts stays at or below this (`kMaxReplicationFactor`, measured on Node 20:
 * `a{16}` and `(?:a{4}){4}` are taken, `a{17}` and `(?:a+){9}` are not).
 */
const LINEAR_MAX_REPLICATION = 16;

/** How nginx compiles a pattern: `~*` and `server_name` with capitals are caseless. */
export interface PcreOptions {
  /** `PCRE2_CASELESS`. Default: false. */
  readonly caseless?: boolean;
}

/** A PCRE pattern translated for JavaScript. */
export interface PcreTranslation {
  /** The JavaScript pattern, for subjects that are byte strings (one UTF-16 unit per byte). */
  readonly source: string;
  /** The JavaScript flags: empty, or `i` when a caseless backreference needs it. */
  readonly flags: string;
  /** The number of capture groups, numbered as PCRE numbers them. */
  readonly captures: number;
  /** The named groups, lowercased, as nginx defines them as variables; the JavaScript groups carry these names. */
  readonly names: readonly string[];
  /** Why V8's linear engine cannot take the pattern (so the backtracking guard does not cover it), or undefined. */
  readonly unprotected: string | undefined;
}

/** A pattern PCRE refuses, or one hitless cannot express in JavaScript: nginx's `pcre2_compile() failed` message. */
export class PcreSyntaxError extends HitlessError {
  /** PCRE's reason, such as `missing closing parenthesis`. */
  readonly reason: string;
  /** Where in the pattern, in bytes. */
  readonly offset: number;

  constructor(pattern: string, reason: string, offset: number) {
    // ngx_regex_compile(): the rest of the pattern from the error offset, unless the offset is its end.
    const rest = offset >= pattern.length ? '' : ` at "${utf8(pattern.slice(offset))}"`;
    super('HITLESS_ERR_CONFIG', `pcre2_compile() failed: ${reason} in "${utf8(pattern)}"${rest}`);
    this.reason = reason;
    this.offset = offset;
  }
}

function utf8(bytes: string): string {
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

/**
 * Translates a PCRE2 pattern, given as a byte string (configuration text converted from UTF-8),
 * into a JavaScript pattern. Throws {@link PcreSyntaxError}.
 */
export function translatePcre(pattern: string, options: PcreOptions = {}): PcreTranslation {
  return new Translator(pattern, options.caseless ?? false).run();
}

/** Inline options PCRE2 lets a pattern set: `(?imnsxU)`. */
interface Flags {
  i: boolean;
  m: boolean;
  n: boolean;
  s: boolean;
  x: boolean;
  U: boolean;
}

/** A `$` whose translation waits until the end: `\n?$` when nothing can follow it, else a lookahead. */
interface Dollar {
  readonly kind: 'dollar';
  tail: boolean;
}

/** A backreference resolved at the end, when every group is known (PCRE allows forward references). */
interface Reference {
  readonly kind: 'reference';
  readonly name: string | undefined;
  readonly number: number;
  readonly offset: number;
  readonly caseless: boolean;
}

/** A subroutine call, `(?&name)` or `(?1)`: the group's pattern again, inlined at the end. */
interface Call {
  readonly kind: 'call';
  readonly name: string | undefined;
  readonly number: number;
  readonly offset: number;
}

type Piece = string | Dollar | Reference | Call;

/** An open group. */
interface Frame {
  readonly flags: Flags;
  readonly start: number;
  readonly lookaround: 'ahead' | 'behind' | undefined;
  readonly capture: boolean;
  /** `$`s of this branch with nothing after them yet. */
  pending: Dollar[];
  /** `$`s at the end of earlier branches of this group. */
  readonly branches: Dollar[];
  /** The largest repetition product inside, for the linear engine's limit. */
  replication: number;
  /** This group's capture number, or 0. */
  readonly number: number;
  /** The captures inside this group (not itself). */
  readonly inner: Capture[];
  /** Whether the group has more than one branch. */
  alternatives: boolean;
}

/** What is known of a capture group: whether a match can pass it by, and where it closes. */
interface Capture {
  /** True when it sits in an alternative or under a quantifier that allows zero. */
  optional: boolean;
  /** The index in the output where it closed; undefined while open. */
  closed: number | undefined;
  /** The index in the output of its opening. */
  readonly start: number;
}

const NAME_CHAR = /[A-Za-z0-9_]/;

class Translator {
  readonly #p: string;
  #i = 0;
  #flags: Flags;
  readonly #out: Piece[] = [];
  readonly #frames: Frame[] = [];
  /** Where the last repeatable item starts in #out; undefined when a quantifier may not follow. */
  #atom: number | undefined;
  /** The repetition product inside the last item (1 for a single character). */
  #atomReplication = 1;
  #captures = 0;
  readonly #names = new Map<string, number>();
  readonly #written = new Map<string, string>();
  readonly #references: Reference[] = [];
  readonly #unprotected: string[] = [];

  constructor(pattern: string, caseless: boolean) {
    this.#p = pattern;
    this.#flags = { i: caseless, m: false, n: false, s: false, x: false, U: false };
    this.#frames.push({ flags: this.#flags, start: 0, lookaround: undefined, capture: false, pending: [], branches: [], replication: 1, number: 0, inner: [], alternatives: false });
  }

  #fail(reason: string, offset: number = this.#i): never {
    throw new PcreSyntaxError(this.#p, reason, offset);
  }

  #refuse(what: string, offset: number): never {
    this.#fail(`${what} is not supported by hitless (JavaScript has no equivalent)`, offset);
  }

  get #frame(): Frame {
    return this.#frames[this.#frames.length - 1] as Frame;
  }

  run(): PcreTranslation {
    const p = this.#p;
    while (this.#i < p.length) this.#step();
    if (this.#frames.length > 1) this.#fail('missing closing parenthesis', p.length);
    for (const dollar of [...this.#frame.branches, ...this.#frame.pending]) dollar.tail = true;
    if (this.#frame.alternatives) for (const capture of this.#frame.inner) capture.optional = true;
    const groupNames = new Map([...this.#names].map(([name, number]) => [number, name]));
    let caselessReference = false;
    const render = (piece: Piece, index: number, calling: readonly number[]): string => {
        if (typeof piece === 'string') return piece;
        if (piece.kind === 'call') {
          const number = piece.name === undefined ? piece.number : this.#names.get(piece.name.toLowerCase());
          const group = number === undefined ? undefined : this.#groups[number];
          if (number === undefined || group === undefined || group.closed === undefined) this.#fail('reference to non-existent subpattern', piece.offset);
          if (calling.includes(number) || (index > group.start && index < group.closed)) this.#refuse('recursion', piece.offset);
          // The group's text with its captures made non-capturing: a call sets none.
          return this.#out.slice(group.start, group.closed).map((inner, k) => {
            if (inner === '(' || (typeof inner === 'string' && /^\(\?<[a-z_]/.test(inner))) return '(?:';
            return render(inner, group.start + k, [...calling, number]);
          }).join('');
        }
        if (piece.kind === 'dollar') {
          if (piece.tail) return '\\n?$';
          this.#unprotected.push('a "$" that is not at the end');
          return '(?=\\n?$)';
        }
        let number = piece.number;
        if (piece.name !== undefined) {
          const found = this.#names.get(piece.name.toLowerCase());
          if (found === undefined) this.#fail('reference to non-existent subpattern', piece.offset);
          number = found;
        }
        if (number > this.#captures) this.#fail('reference to non-existent subpattern', piece.offset);
        // PCRE fails a backreference to a group that has not matched; JavaScript matches it empty.
        const group = this.#groups[number];
        if (group === undefined || group.optional || group.closed === undefined || group.closed > index) {
          this.#refuse('a backreference to a group that may not have matched', piece.offset);
        }
        caselessReference ||= piece.caseless;
        const name = groupNames.get(number);
        return name === undefined ? `(?:\\${number})` : `\\k<${name}>`;
    };
    const source = this.#out.map((piece, index) => render(piece, index, [])).join('');
    if (this.#calls) this.#unprotected.push('a subroutine call');
    let flags = '';
    if (caselessReference) {
      // A caseless backreference needs JavaScript's i flag, which folds the whole pattern.
      if (this.#caseSensitiveLetters) this.#refuse('a caseless backreference in a partly case-sensitive pattern', 0);
      flags = 'i';
      this.#unprotected.push('the i flag');
    }
    if (this.#references.length > 0) this.#unprotected.push('a backreference');
    if (this.#frame.replication > LINEAR_MAX_REPLICATION) this.#unprotected.push(`repetition counts over ${LINEAR_MAX_REPLICATION}`);
    try {
      new RegExp(source, flags);
    } catch (err) {
      this.#fail(`hitless cannot translate this pattern (${(err as Error).message})`, 0);
    }
    const unprotected = [...new Set(this.#unprotected)];
    return {
      source,
      flags,
      captures: this.#captures,
      names: [...this.#names.keys()],
      unprotected: unprotected.length === 0 ? undefined : unprotected.join(', '),
    };
  }

  /** Set once a letter is matched case-sensitively: JavaScript's global i flag would change the pattern. */
  #caseSensitiveLetters = false;

  #emitAtom(text: string, replication = 1): void {
    this.#touch();
    this.#atom = this.#out.length;
    this.#atomReplication = replication;
    this.#out.push(text);
  }

  #emitAssertion(text: string): void {
    this.#touch();
    this.#atom = undefined;
    this.#out.push(text);
  }

  /** Something follows the pending `$`s of this branch, so they are not at the end. */
  #touch(): void {
    const frame = this.#frame;
    for (const dollar of frame.pending) dollar.tail = false;
    frame.pending = [];
  }

  #noteReplication(value: number): void {
    this.#frame.replication = Math.max(this.#frame.replication, value);
  }

  #literal(unit: number): void {
    if (this.#flags.i && ((unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a))) {
      this.#emitAtom(emitSet(foldCase([[unit, unit]])));
    } else {
      if (!this.#flags.i && /[A-Za-z]/.test(String.fromCharCode(unit))) this.#caseSensitiveLetters = true;
      this.#emitAtom(escapeUnit(unit, false));
    }
  }

  #set(ranges: Ranges): void {
    this.#emitAtom(emitSet(this.#caseRanges(ranges)));
  }

  /** A set as the current options read it: folded when caseless, else noted if folding would change it. */
  #caseRanges(ranges: Ranges): Ranges {
    if (this.#flags.i) return foldCase(ranges);
    if (emitSet(foldCase(ranges)) !== emitSet(ranges)) this.#caseSensitiveLetters = true;
    return ranges;
  }

  #skipExtended(): void {
    const p = this.#p;
    while (this.#flags.x && this.#i < p.length) {
      const c = p[this.#i] as string;
      if (' \t\n\v\f\r'.includes(c)) this.#i++;
      else if (c === '#') {
        const end = p.indexOf('\n', this.#i);
        this.#i = end === -1 ? p.length : end + 1;
      } else break;
    }
  }

  #step(): void {
    this.#skipExtended();
    const p = this.#p;
    if (this.#i >= p.length) return;
    const c = p[this.#i] as string;
    const at = this.#i;
    this.#i++;
    switch (c) {
      case '\\':
        this.#escape(at);
        break;
      case '[':
        this.#class(at);
        break;
      case '(':
        this.#open(at);
        break;
      case ')':
        this.#close(at);
        break;
      case '|': {
        // The `$`s of a finished branch stay pending: what follows the group decides.
        const frame = this.#frame;
        frame.branches.push(...frame.pending);
        frame.pending = [];
        frame.alternatives = true;
        this.#out.push('|');
        this.#atom = undefined;
        break;
      }
      case '^':
        if (this.#flags.m) {
          this.#unprotected.push('multiline mode');
          this.#emitAssertion('(?<![^\\n])');
        } else this.#emitAssertion('^');
        break;
      case '$':
        if (this.#flags.m) {
          this.#unprotected.push('multiline mode');
          this.#emitAssertion('(?=\\n|$)');
        } else this.#dollar();
        break;
      case '.':
        this.#set(this.#flags.s ? [[0, MAX_UNIT]] : complement(NEWLINE));
        break;
      case '*':
      case '+':
      case '?':
        this.#quantifier(at, c === '*' ? 0 : c === '+' ? 1 : 0, c === '?' ? 1 : Infinity);
        break;
      case '{': {
        const counted = /^\{(\d+)(?:(,)(\d*))?\}/.exec(p.slice(at));
        if (counted === null) {
          this.#literal(0x7b);
          break;
        }
        const min = Number(counted[1]);
        const max = counted[2] === undefined ? min : counted[3] === '' ? Infinity : Number(counted[3]);
        if (min > 65535 || (max !== Infinity && max > 65535)) this.#fail('number too big in {} quantifier', at + counted[0].length - 1);
        if (max < min) this.#fail('numbers out of order in {} quantifier', at + counted[0].length - 1);
        this.#i = at + counted[0].length;
        this.#quantifier(at, min, max, counted[0]);
        break;
      }
      default:
        this.#literal(c.charCodeAt(0));
    }
  }

  #dollar(): void {
    this.#touch();
    const dollar: Dollar = { kind: 'dollar', tail: false };
    this.#out.push(dollar);
    this.#atom = undefined;
    // Inside a lookbehind the body must end where the assertion stands, and inside a capture the
    // newline would be captured: there `$` stays an assertion.
    if (this.#frames.every((frame) => frame.lookaround !== 'behind' && !frame.capture)) this.#frame.pending.push(dollar);
  }

  #quantifier(at: number, min: number, max: number, text?: string): void {
    if (this.#atom === undefined) this.#fail('quantifier does not follow a repeatable item', text === undefined ? at : at + text.length - 1);
    const group = this.#lastGroup?.start === this.#atom ? this.#lastGroup : undefined;
    if (group !== undefined) {
      // PCRE keeps a capture's value from an earlier repetition when a later one passes it by;
      // JavaScript clears the captures of a quantified group at each repetition (ECMA-262
      // RepeatMatcher), so `(?:(a)|b)+` on "ab" has $1 "a" in nginx and unset in JavaScript.
      if (max > 1 && group.inner.some((capture) => capture.optional)) this.#refuse('a repeated group with a capture a repetition can pass by', at);
      if (min === 0) for (const capture of [...group.inner, ...(group.own === undefined ? [] : [group.own])]) capture.optional = true;
    }
    const p = this.#p;
    let suffix = '';
    if (p[this.#i] === '+') this.#refuse('a possessive quantifier', at);
    if (p[this.#i] === '?') {
      this.#i++;
      suffix = '?';
    }
    if (this.#flags.U) suffix = suffix === '?' ? '' : '?';
    this.#out.push((text ?? p[at]) + suffix);
    // A group repeated more than once follows itself: its `$`s are not at the end.
    if (max > 1) this.#touch();
    // V8 unrolls `{n}` n times, `{n,m}` m times and `{n,}` n + 1 times (n copies and a star).
    const factor = max === Infinity ? min + 1 : max;
    this.#noteReplication(this.#atomReplication * factor);
    this.#atom = undefined;
  }

  #open(at: number): void {
    const p = this.#p;
    let capture = !this.#flags.n;
    let name: string | undefined;
    let lookaround: Frame['lookaround'];
    let prefix = '(';
    let flags = this.#flags;
    if (p[this.#i] === '*') {
      if (!/[A-Za-z_:]/.test(p[this.#i + 1] ?? '')) this.#fail('(*VERB) not recognized or malformed', this.#i + 1);
      this.#refuse('a (*VERB) or (*name: group', at);
    }
    if (p[this.#i] === '?') {
      this.#i++;
      const c = p[this.#i] ?? '';
      const rest = p.slice(this.#i);
      if (c === '#') {
        const end = p.indexOf(')', this.#i);
        if (end === -1) this.#fail('missing ) after (?# comment', p.length);
        this.#i = end + 1;
        return;
      }
      if (c === ':') {
        this.#i++;
        capture = false;
        prefix = '(?:';
      } else if (c === '=' || c === '!' || rest.startsWith('<=') || rest.startsWith('<!')) {
        const behind = c === '<';
        this.#i += behind ? 2 : 1;
        capture = false;
        lookaround = behind ? 'behind' : 'ahead';
        prefix = `(?${behind ? '<' : ''}${p[this.#i - 1]}`;
        this.#unprotected.push('a lookahead or lookbehind assertion');
      } else if (c === '<' || c === "'" || rest.startsWith('P<')) {
        this.#i += c === 'P' ? 2 : 1;
        name = this.#groupName(c === "'" ? "'" : '>');
        capture = true;
      } else if (rest.startsWith('P=')) {
        this.#i += 2;
        const refName = this.#referenceName(')');
        this.#reference(undefined, refName, at + 4);
        return;
      } else if (c === 'R' || /^[+-]?0\)/.test(rest)) {
        this.#refuse('recursion', at);
      } else if (rest.startsWith('P>') || c === '&') {
        this.#i += c === '&' ? 1 : 2;
        this.#call(undefined, this.#referenceName(')'), this.#i);
        return;
      } else if (/^[+-]?\d/.test(rest)) {
        const digits = /^([+-]?)(\d+)\)/.exec(rest);
        if (digits === null) this.#fail('missing closing parenthesis', p.length);
        this.#i += digits[0].length;
        const n = Number(digits[2]);
        this.#call(digits[1] === '-' ? this.#captures + 1 - n : digits[1] === '+' ? this.#captures + n : n, undefined, this.#i - 1);
        return;
      } else if (c === 'P') {
        this.#fail('unrecognized character after (?P', this.#i + 1);
      } else if (c === '>') {
        this.#refuse('an atomic group', this.#i);
      } else if (c === '|') {
        this.#refuse('a branch reset group', this.#i);
      } else if (c === '(') {
        this.#refuse('a conditional group', this.#i);
      } else if (c === 'C') {
        this.#refuse('a callout', this.#i);
      } else {
        // Option settings: (?imnsxU-imnsxU) for the rest of the group, or (?...: ...) for a group.
        const next = { ...this.#flags };
        let on = true;
        if (p[this.#i] === '^') {
          Object.assign(next, { i: false, m: false, n: false, s: false, x: false, U: false });
          this.#i++;
        }
        for (;;) {
          const letter = p[this.#i];
          if (letter === undefined) this.#fail('missing closing parenthesis', p.length);
          if (letter === ')' || letter === ':') break;
          if (letter === '-' && on) on = false;
          else if (letter === 'J') this.#refuse('(?J) (duplicate names)', this.#i);
          else if (letter === 'x' && p[this.#i + 1] === 'x') this.#refuse('(?xx)', this.#i);
          else if (letter === 'i' || letter === 'm' || letter === 'n' || letter === 's' || letter === 'x' || letter === 'U') next[letter] = on;
          else this.#fail('unrecognized character after (? or (?-', this.#i);
          this.#i++;
        }
        if (p[this.#i] === ')') {
          this.#i++;
          this.#flags = next;
          // An option setting is not a repeatable item.
          this.#atom = undefined;
          return;
        }
        this.#i++;
        capture = false;
        prefix = '(?:';
        flags = next;
      }
    }
    if (capture) {
      this.#captures++;
      if (name !== undefined) {
        const lower = name.toLowerCase();
        const known = this.#written.get(lower);
        if (known === name) this.#fail('two named subpatterns have the same name (PCRE2_DUPNAMES not set)', this.#i);
        // nginx lowercases variable names, so (?<a>) and (?<A>) would both be $a.
        if (known !== undefined) this.#refuse('two group names differing only in case', at);
        this.#written.set(lower, name);
        this.#names.set(lower, this.#captures);
        prefix = `(?<${lower}>`;
      }
    }
    if (!capture && prefix === '(') prefix = '(?:';
    this.#touch();
    const start = this.#out.length;
    this.#out.push(prefix);
    this.#frames.push({ flags: this.#flags, start, lookaround, capture, pending: [], branches: [], replication: 1, number: capture ? this.#captures : 0, inner: [], alternatives: false });
    if (capture) this.#groups[this.#captures] = { optional: false, closed: undefined, start };
    this.#flags = flags;
    this.#atom = undefined;
  }

  #close(at: number): void {
    if (this.#frames.length === 1) this.#fail('unmatched closing parenthesis', at);
    const frame = this.#frames.pop() as Frame;
    this.#out.push(')');
    this.#flags = frame.flags;
    const pending = [...frame.branches, ...frame.pending];
    if (frame.lookaround === undefined) this.#frame.pending.push(...pending);
    else for (const dollar of pending) dollar.tail = true;
    this.#atom = frame.start;
    this.#atomReplication = frame.replication;
    this.#noteReplication(frame.replication);
    if (frame.alternatives) for (const capture of frame.inner) capture.optional = true;
    const own = frame.number === 0 ? undefined : this.#groups[frame.number];
    if (own !== undefined) own.closed = this.#out.length;
    this.#lastGroup = { start: frame.start, inner: frame.inner, own };
    this.#frame.inner.push(...frame.inner, ...(own === undefined ? [] : [own]));
  }

  /** The group just closed, which a quantifier may follow. */
  #lastGroup: { readonly start: number; readonly inner: readonly Capture[]; readonly own: Capture | undefined } | undefined;
  /** The capture groups by number. */
  readonly #groups: (Capture | undefined)[] = [];

  /** A group name up to `end`, as PCRE2 checks it. */
  #groupName(end: string): string {
    const p = this.#p;
    const start = this.#i;
    if (/\d/.test(p[start] ?? '')) this.#fail('subpattern name must start with a non-digit', start);
    while (NAME_CHAR.test(p[this.#i] ?? '')) this.#i++;
    const name = p.slice(start, this.#i);
    if (name === '') this.#fail('subpattern name expected', start);
    if (name.length > 32) this.#fail('subpattern name is too long (maximum 32 code units)', start);
    if (p[this.#i] !== end) this.#fail('syntax error in subpattern name (missing terminator?)', this.#i);
    this.#i++;
    return name;
  }

  #referenceName(end: string): string {
    const start = this.#i;
    while (NAME_CHAR.test(this.#p[this.#i] ?? '')) this.#i++;
    const name = this.#p.slice(start, this.#i);
    if (name === '') this.#fail('subpattern name expected', start);
    if (this.#p[this.#i] !== end) this.#fail('syntax error in subpattern name (missing terminator?)', this.#i);
    this.#i++;
    return name;
  }

  /**
   * A subroutine call. PCRE2 (since 10.30) does not make a call atomic and restores the captures
   * after it, so the called group's pattern inlined without its captures is the same; recursion
   * cannot be inlined and is refused when the end of the pattern shows it.
   */
  #call(number: number | undefined, name: string | undefined, offset: number): void {
    this.#touch();
    this.#atom = this.#out.length;
    this.#atomReplication = 1;
    this.#calls = true;
    this.#out.push({ kind: 'call', name, number: number ?? 0, offset });
  }

  #calls = false;

  #reference(number: number | undefined, name: string | undefined, offset: number): void {
    const reference: Reference = { kind: 'reference', name, number: number ?? 0, offset, caseless: this.#flags.i };
    this.#references.push(reference);
    this.#touch();
    this.#atom = this.#out.length;
    this.#atomReplication = 1;
    this.#out.push(reference);
  }

  /** An escape outside a class. */
  #escape(at: number): void {
    const p = this.#p;
    const c = p[this.#i];
    if (c === undefined) this.#fail('\\ at end of pattern', p.length);
    this.#i++;
    switch (c) {
      case 'd': return this.#set(DIGIT);
      case 'D': return this.#set(complement(DIGIT));
      case 'w': return this.#set(WORD);
      case 'W': return this.#set(complement(WORD));
      case 's': return this.#set(SPACE);
      case 'S': return this.#set(complement(SPACE));
      case 'h': return this.#set(HSPACE);
      case 'H': return this.#set(complement(HSPACE));
      case 'v': return this.#set(VSPACE);
      case 'V': return this.#set(complement(VSPACE));
      case 'N': return this.#set(complement(NEWLINE));
      case 'C': return this.#set([[0, MAX_UNIT]]);
      case 'b': return this.#emitAssertion('\\b');
      case 'B': return this.#emitAssertion('\\B');
      // \G is where matching started; nginx always starts at the subject's start.
      case 'A':
      case 'G':
        return this.#emitAssertion('^');
      case 'z': return this.#emitAssertion('$');
      case 'Z': return this.#dollar();
      case 'Q': {
        const end = p.indexOf('\\E', this.#i);
        const text = p.slice(this.#i, end === -1 ? p.length : end);
        this.#i = end === -1 ? p.length : end + 2;
        for (const ch of text) this.#literal(ch.charCodeAt(0));
        return;
      }
      case 'E': return;
      case 'K': return this.#refuse('\\K', at);
      case 'R': return this.#refuse('\\R', at);
      case 'X': return this.#refuse('\\X', at);
      case 'p':
      case 'P':
        return this.#emitAtom(emitSet(this.#property(c === 'P', at)));
      case 'k': {
        const open = p[this.#i];
        const close = open === '<' ? '>' : open === "'" ? "'" : open === '{' ? '}' : undefined;
        if (close === undefined) this.#fail('\\k is not followed by a braced, angle-bracketed, or quoted name', this.#i);
        this.#i++;
        const offset = this.#i;
        this.#reference(undefined, this.#referenceName(close), offset);
        return;
      }
      case 'g': {
        const rest = p.slice(this.#i);
        const called = /^(?:<([+-]?\d+|[A-Za-z_]\w*)>|'([+-]?\d+|[A-Za-z_]\w*)')/.exec(rest);
        if (called !== null) {
          // Oniguruma's spelling of a subroutine call.
          this.#i += called[0].length;
          const target = (called[1] ?? called[2]) as string;
          const relative = /^([+-]?)(\d+)$/.exec(target);
          if (relative === null) return this.#call(undefined, target, at + 3);
          const n = Number(relative[2]);
          if (n === 0 && relative[1] === '') this.#refuse('recursion', at);
          return this.#call(relative[1] === '-' ? this.#captures + 1 - n : relative[1] === '+' ? this.#captures + n : n, undefined, at + 3);
        }
        const braced = /^\{(-?\d+|[A-Za-z_]\w*)\}/.exec(rest) ?? /^(-?\d+)/.exec(rest);
        if (braced === null) this.#fail('a numbered reference must not be zero', this.#i);
        this.#i += braced[0].length;
        const value = braced[1] as string;
        if (!/^-?\d+$/.test(value)) return this.#reference(undefined, value, at + 3);
        const n = Number(value);
        if (n === 0) this.#fail('a numbered reference must not be zero', this.#i);
        const number = n < 0 ? this.#captures + 1 + n : n;
        if (number <= 0) this.#fail('reference to non-existent subpattern', this.#i);
        return this.#reference(number, undefined, this.#i);
      }
      default:
        break;
    }
    if (c >= '1' && c <= '9') {
      const digits = /^\d+/.exec(p.slice(at + 1))?.[0] ?? c;
      const n = Number(digits);
      // pcre2pattern: below 10, starting with 8 or 9, or no more than the groups so far: a backreference.
      if (n < 10 || c === '8' || c === '9' || n <= this.#captures) {
        this.#i = at + 1 + digits.length;
        return this.#reference(n, undefined, at + 1);
      }
    }
    const unit = this.#characterEscape(c, at);
    if (unit === undefined) this.#fail('unrecognized character follows \\', this.#i - 1);
    this.#literal(unit);
  }

  /** `\n`, `\x41`, `\x{41}`, `\o{101}`, `\101`, `\cA`, `\e`, or an escaped non-alphanumeric: its code unit. */
  #characterEscape(c: string, at: number): number | undefined {
    const p = this.#p;
    switch (c) {
      case 'a': return 0x07;
      case 'e': return 0x1b;
      case 'f': return 0x0c;
      case 'n': return 0x0a;
      case 'r': return 0x0d;
      case 't': return 0x09;
      case 'c': {
        const next = p[this.#i];
        if (next === undefined) this.#fail('\\c at end of pattern', p.length);
        const code = next.charCodeAt(0);
        if (code < 0x20 || code > 0x7e) this.#fail('\\c must be followed by a printable ASCII character', this.#i);
        this.#i++;
        return next.toUpperCase().charCodeAt(0) ^ 0x40;
      }
      case 'x': {
        const braced = /^\{([0-9A-Fa-f]+)\}/.exec(p.slice(this.#i));
        if (braced !== null) {
          this.#i += braced[0].length;
          const value = parseInt(braced[1] as string, 16);
          if (value > 0xff) this.#fail('character code point value in \\x{} or \\o{} is too large', this.#i - 1);
          return value;
        }
        const hex = /^[0-9A-Fa-f]{0,2}/.exec(p.slice(this.#i))?.[0] ?? '';
        this.#i += hex.length;
        return hex === '' ? 0 : parseInt(hex, 16);
      }
      case 'o': {
        const braced = /^\{([0-7]+)\}/.exec(p.slice(this.#i));
        if (braced === null) this.#fail('missing opening brace after \\o', this.#i);
        this.#i += braced[0].length;
        const value = parseInt(braced[1] as string, 8);
        if (value > 0xff) this.#fail('character code point value in \\x{} or \\o{} is too large', this.#i - 1);
        return value;
      }
      case 'u':
      case 'U':
      case 'L':
      case 'l':
      case 'F':
        return this.#fail('PCRE2 does not support \\F, \\L, \\l, \\N{name}, \\U, or \\u', this.#i);
      default:
        break;
    }
    if (c >= '0' && c <= '7') {
      // Octal: up to three digits, the first one included.
      const digits = /^[0-7]{1,3}/.exec(p.slice(at + 1))?.[0] ?? c;
      this.#i = at + 1 + digits.length;
      return parseInt(digits, 8) & 0xff;
    }
    if (/[A-Za-z0-9]/.test(c)) return undefined;
    return c.charCodeAt(0);
  }

  /** `[...]`: a set of code units, with PCRE's escapes and POSIX classes, folded when caseless. */
  #class(at: number): void {
    const p = this.#p;
    if (/^\[[:.=]/.test(p.slice(at)) && this.#posixName(at) !== undefined) {
      this.#fail('POSIX named classes are supported only within a class', at);
    }
    let negated = false;
    if (p[this.#i] === '^') {
      negated = true;
      this.#i++;
    }
    const ranges: Ranges = [];
    let first = true;
    for (;;) {
      if (this.#i >= p.length) this.#fail('missing terminating ] for character class', p.length);
      const c = p[this.#i] as string;
      if (c === ']' && !first) {
        this.#i++;
        break;
      }
      first = false;
      const item = this.#classItem();
      if (item === undefined) continue;
      if (typeof item !== 'number') {
        ranges.push(...item);
        if (p[this.#i] === '-' && p[this.#i + 1] !== ']' && this.#i + 1 < p.length) this.#fail('invalid range in character class', this.#i);
        continue;
      }
      if (p[this.#i] === '-' && p[this.#i + 1] !== ']' && this.#i + 1 < p.length) {
        this.#i++;
        const endAt = this.#i;
        const high = this.#classItem();
        if (high === undefined) {
          ranges.push([item, item], [0x2d, 0x2d]);
          continue;
        }
        if (typeof high !== 'number') this.#fail('invalid range in character class', this.#i - 1);
        if (high < item) this.#fail('range out of order in character class', this.#i - 1 > endAt ? this.#i - 1 : endAt);
        ranges.push([item, high]);
        continue;
      }
      ranges.push([item, item]);
    }
    const folded = this.#caseRanges(ranges);
    this.#touch();
    this.#atom = this.#out.length;
    this.#atomReplication = 1;
    this.#out.push(emitSet(negated ? complement(folded) : folded));
  }

  /** The name of a POSIX class `[:name:]` at `at`, or undefined when the text is not one. */
  #posixName(at: number): string | undefined {
    const found = /^\[([:.=])(\^?)([A-Za-z]*)\1\]/.exec(this.#p.slice(at));
    return found === null ? undefined : `${found[2] ?? ''}${found[3] ?? ''}`;
  }

  /** One item of a class: a code unit, a set (`\d`, `[:alpha:]`), or undefined for nothing (`\E`, an empty `\Q\E`). */
  #classItem(): number | Ranges | undefined {
    const p = this.#p;
    const at = this.#i;
    const c = p[at] as string;
    if (c === '[' && /^\[[:.=]/.test(p.slice(at))) {
      const found = /^\[([:.=])(\^?)([A-Za-z]*)\1\]/.exec(p.slice(at));
      if (found !== null) {
        if (found[1] !== ':') this.#fail('POSIX collating elements are not supported', at);
        const ranges = POSIX[found[3] as string];
        if (ranges === undefined) this.#fail('unknown POSIX class name', at + 2);
        this.#i += found[0].length;
        return found[2] === '^' ? complement(ranges) : ranges;
      }
    }
    this.#i++;
    if (c !== '\\') return c.charCodeAt(0);
    const e = p[this.#i];
    if (e === undefined) this.#fail('\\ at end of pattern', p.length);
    this.#i++;
    switch (e) {
      case 'd': return DIGIT;
      case 'D': return complement(DIGIT);
      case 'w': return WORD;
      case 'W': return complement(WORD);
      case 's': return SPACE;
      case 'S': return complement(SPACE);
      case 'h': return HSPACE;
      case 'H': return complement(HSPACE);
      case 'v': return VSPACE;
      case 'V': return complement(VSPACE);
      case 'b': return 0x08;
      case 'E': return undefined;
      case 'Q': {
        const end = p.indexOf('\\E', this.#i);
        const text = p.slice(this.#i, end === -1 ? p.length : end);
        this.#i = end === -1 ? p.length : end + 2;
        return text.length === 0 ? undefined : [...text].map((ch): [number, number] => [ch.charCodeAt(0), ch.charCodeAt(0)]);
      }
      case 'N':
      case 'B':
      case 'R':
      case 'X':
        return this.#fail('escape sequence is invalid in character class', this.#i - 1);
      case 'p':
      case 'P':
        return this.#property(e === 'P', at);
      case '8':
      case '9':
        return e.charCodeAt(0);
      default:
        break;
    }
    const unit = this.#characterEscape(e, at);
    if (unit === undefined) this.#fail('unrecognized character follows \\', this.#i - 1);
    return unit;
  }
  /**
   * `\p{name}`, `\pL`, `\p{^name}` (and `\P`) after the letter, as a set of bytes: see
   * pcre-properties.ts. PCRE does not fold a property under caseless matching, so a cased
   * category there (or JavaScript's i flag) could not keep its meaning: refused.
   */
  #property(negated: boolean, at: number): Ranges {
    const p = this.#p;
    let text: string;
    if (p[this.#i] === '{') {
      const end = p.indexOf('}', this.#i);
      if (end === -1) this.#fail('malformed \\P or \\p sequence', p.length);
      text = p.slice(this.#i + 1, end);
      this.#i = end + 1;
      if (text.startsWith('^')) {
        negated = !negated;
        text = text.slice(1);
      }
    } else {
      const letter = p[this.#i];
      if (letter === undefined) this.#fail('malformed \\P or \\p sequence', this.#i);
      text = letter;
      this.#i++;
    }
    const name = propertyName(text);
    if (name === undefined) {
      if (/^[A-Za-z][A-Za-z0-9_ -]*$/.test(text)) this.#fail(`\\p{${text}} is not supported by hitless (only the general categories, L& and Any are)`, at);
      this.#fail('unknown property after \\P or \\p', this.#i);
    }
    const ranges = propertyRanges(name);
    if (CASED_CATEGORIES.has(name)) {
      if (this.#flags.i) this.#fail(`\\p{${name}} in a caseless pattern is not supported by hitless (PCRE does not fold a property)`, at);
      this.#caseSensitiveLetters = true;
    }
    return negated ? complement(ranges) : ranges;
  }
}
