import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocationTree } from '../../src/http/locations.js';
import { errorOf, load } from './helpers.js';

/** The tree of the first server; each location is named by its arguments. */
function treeOf(locations: string): LocationTree<string> {
  const server = load(`http { server { ${locations} } }`).main.child('http')?.child('server');
  assert.ok(server);
  return LocationTree.build(server, (block) => block.args.join(' '));
}

function pick(tree: LocationTree<string>, uri: string): string | undefined {
  return tree.find(uri)?.value;
}

describe('location: nginx docs example', () => {
  const tree = treeOf(`
    location = / { }
    location / { }
    location /documents/ { }
    location ^~ /images/ { }
    location ~* \\.(gif|jpg|jpeg)$ { }`);
  const table: [string, string][] = [
    ['/', '= /'],
    ['/index.html', '/'],
    ['/documents/document.html', '/documents/'],
    ['/images/1.gif', '^~ /images/'],
    ['/documents/1.jpg', '~* \\.(gif|jpg|jpeg)$'],
    ['/documents/1.JPG', '~* \\.(gif|jpg|jpeg)$'],
  ];
  for (const [uri, location] of table) it(`${uri} -> ${location}`, () => assert.equal(pick(tree, uri), location));
});

describe('location: selection rules', () => {
  it('takes the longest prefix, not the first', () => {
    const tree = treeOf('location /a { } location /a/b/c { } location /a/b { }');
    assert.equal(pick(tree, '/a/b/cd'), '/a/b/c');
    assert.equal(pick(tree, '/a/bx'), '/a/b');
    assert.equal(pick(tree, '/x'), undefined);
  });

  it('tries regexes in order of appearance, even when a prefix matched', () => {
    const tree = treeOf('location /img/ { } location ~ \\.png$ { } location ~ /img/ { }');
    assert.equal(pick(tree, '/img/a.png'), '~ \\.png$');
    assert.equal(pick(tree, '/img/a.gif'), '~ /img/');
    assert.equal(pick(tree, '/img'), undefined);
  });

  it('= matches only the exact URI; a prefix of the same name still lets regexes run', () => {
    const tree = treeOf('location = /x { } location /x { } location ~ x { }');
    assert.equal(pick(tree, '/x'), '= /x');
    assert.equal(pick(tree, '/x/'), '~ x');
  });

  it('~ is case-sensitive, ~* is not', () => {
    const tree = treeOf('location ~ ^/CS$ { } location ~* ^/ci$ { }');
    assert.equal(pick(tree, '/CS'), '~ ^/CS$');
    assert.equal(pick(tree, '/cs'), undefined);
    assert.equal(pick(tree, '/CI'), '~* ^/ci$');
  });

  it('searches nested locations of the prefix found, then the outer regexes', () => {
    const tree = treeOf('location /a/ { location /a/b/ { } location ~ \\.php$ { } } location ~ \\.txt$ { }');
    assert.equal(pick(tree, '/a/b/x'), '/a/b/');
    assert.equal(pick(tree, '/a/b/x.php'), '~ \\.php$');
    assert.equal(pick(tree, '/a/b/x.txt'), '~ \\.txt$');
    assert.equal(pick(tree, '/a/x'), '/a/');
  });

  it('^~ stops the regex search of its level but not of its nested locations', () => {
    const tree = treeOf('location ^~ /static/ { location ~ \\.css$ { } } location ~ \\.(css|js)$ { }');
    assert.equal(pick(tree, '/static/a.css'), '~ \\.css$');
    assert.equal(pick(tree, '/static/a.js'), '^~ /static/');
    assert.equal(pick(tree, '/other/a.js'), '~ \\.(css|js)$');
  });

  it('searches nested locations of a regex location', () => {
    const tree = treeOf('location ~ ^/api/ { location ~ /v2/ { } }');
    assert.equal(pick(tree, '/api/v2/x'), '~ /v2/');
    assert.equal(pick(tree, '/api/v1/x'), '~ ^/api/');
  });

  it('keeps the captures of the regex that matched, named ones included', () => {
    const tree = treeOf('location ~ ^/user/(?<name>\\w+)/(\\d+)$ { }');
    const found = tree.find('/user/bob/42');
    assert.equal(found?.match?.groups?.name, 'bob');
    assert.equal(found?.match?.[2], '42');
  });

  it('keeps named locations apart from URI matching', () => {
    const tree = treeOf('location @fallback { } location / { }');
    assert.equal(pick(tree, '/@fallback'), '/');
    assert.equal(tree.named('@fallback'), '@fallback');
  });
});

describe('location: nginx error messages', () => {
  it('duplicate location "/x"', () => {
    assert.equal(errorOf('http { server {\nlocation /x { }\nlocation /x { } } }'), 'duplicate location "/x" in /x.conf:3');
    assert.equal(errorOf('http { server {\nlocation = /x { }\nlocation = /x { } } }'), 'duplicate location "/x" in /x.conf:3');
    assert.equal(errorOf('http { server {\nlocation /x { }\nlocation ^~ /x { } } }'), 'duplicate location "/x" in /x.conf:3');
  });

  it('allows = /x next to /x, and regexes twice', () => {
    assert.doesNotThrow(() => load('http { server { location = /x { } location /x { } location ~ a { } location ~ a { } } }'));
  });

  it('finds duplicates in nested locations', () => {
    assert.equal(errorOf('http { server { location /a/ {\nlocation /a/b { }\nlocation /a/b { } } } }'), 'duplicate location "/a/b" in /x.conf:3');
  });
});
