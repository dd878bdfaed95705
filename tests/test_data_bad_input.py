"""Bad input to the catalog loaders: each case gets a clear DescgenError naming file, line/row and field,
or a counted drop with its reason (and an example naming line and field) in the data card. Never silent."""
import json
from pathlib import Path
import pytest
from descgen.core import DescgenError
from descgen import data as D


def card_steps(d):
    return {s['step']: s for s in D.load_card(d)['steps']}


def balanced(d):
    c = D.load_card(d)
    assert c['rows_in'] - c['rows_dropped'] == c['rows_out'], c
    return c


def write(p: Path, text: str) -> Path:
    p.write_text(text, encoding='utf-8'); return p


def test_missing_required_column(tmp_path):
    f = write(tmp_path/'cat.csv', 'id,colour,text\n1,red,A red mug for coffee.\n')
    with pytest.raises(DescgenError, match=r"cat\.csv: missing required column 'description'"):
        D.prepare(f, tmp_path/'o')
    # an explicit mapping naming a column that is not there
    with pytest.raises(DescgenError, match=r"missing required column 'sku' \(id\)"):
        D.prepare(f, tmp_path/'o', mapping={'id': 'sku', 'description': 'text'})
    with pytest.raises(DescgenError, match=r"missing required column 'size' \(attribute\)"):
        D.prepare(f, tmp_path/'o', mapping={'description': 'text', 'attributes': ['colour', 'size']})
    # the right mapping reads it
    d = D.prepare(f, tmp_path/'ok', mapping={'description': 'text'})
    assert balanced(d)['rows_out'] == 1


def test_non_utf8_file(tmp_path):
    f = tmp_path/'latin.csv'
    f.write_bytes('id,colour,description\n1,red,A red mug.\n2,beige,Caf\xe9 cr\xe8me mug.\n'.encode('latin-1'))
    with pytest.raises(DescgenError, match=r'latin\.csv, line 3, column \d+: not valid utf-8 \(byte 0xe9\)'):
        D.prepare(f, tmp_path/'o')
    d = D.prepare(f, tmp_path/'o', mapping={'encoding': 'latin-1'})
    assert sorted(r for s in D.SPLITS for p in D.load_split(d, s) for r in p.references) == ['A red mug.', 'Café crème mug.']



ZH_ROWS = 'id,颜色,类型,description\n' + ''.join(f'{i},{c},连衣裙,这款{c}连衣裙采用雪纺面料，轻盈飘逸，适合夏天穿着。\n'
                                              for i, c in enumerate(['红色', '蓝色', '白色', '黑色', '粉色', '绿色']))
EN_ROWS = 'id,colour,description\n' + ''.join(f'{i},{c},\u201cCaf\u00e9\u201d mug in {c} \u2013 only 9\u20ac with cr\u00e8me glaze.\n'
                                              for i, c in enumerate(['red', 'blue', 'white', 'black', 'pink', 'green']))


@pytest.mark.parametrize('text,enc,named', [(ZH_ROWS, 'gbk', 'gb18030'), (ZH_ROWS, 'gb18030', 'gb18030'),
                                            (ZH_ROWS, 'utf-16', 'utf-16'), (EN_ROWS, 'utf-16', 'utf-16'),
                                            (EN_ROWS, 'cp1252', 'cp1252')])
def test_the_named_encoding_reads_the_file(tmp_path, capsys, text, enc, named):
    "`descgen prepare` on a GBK, GB18030, UTF-16 or cp1252 file: exit 2 naming the encoding (charset-normalizer's guess),"
    " and that encoding, passed in the mapping, reads the file back exactly."
    import re
    from descgen.cli import main
    f = tmp_path/'cat.csv'
    f.write_bytes(text.encode(enc))
    assert main(['prepare', '--dataset', str(f), '--out', str(tmp_path/'o')]) == 2
    err = capsys.readouterr().err
    m = re.search(r'it looks like (\S+) \(charset-normalizer\): pass encoding "(\S+)" \(mapping "encoding": "(\S+)"\)', err)
    assert m and m.group(1) == m.group(2) == m.group(3) == named and 'Traceback' not in err, err
    mapping = json.dumps({'encoding': named})
    assert main(['prepare', '--dataset', str(f), '--out', str(tmp_path/'o'), '--mapping', mapping]) == 0
    refs = sorted(r for s in D.SPLITS for p in D.load_split(tmp_path/'o', s) for r in p.references)
    assert refs == sorted(line.split(',', 3)[-1] for line in text.splitlines()[1:])

def test_non_utf8_jsonl(tmp_path):
    f = tmp_path/'x.jsonl'
    f.write_bytes(b'{"id": "1", "attributes": {"a": "b"}, "description": "ok text"}\n{"id": "2", "description": "bad \xff"}\n')
    with pytest.raises(DescgenError, match=r'x\.jsonl, line 2'):
        D.prepare(f, tmp_path/'o')


def test_broken_json_line(tmp_path):
    f = write(tmp_path/'cat.jsonl', '{"id": "a", "attributes": {"colour": "red"}, "description": "A red mug."}\n'
                                    '{"id": "b", "attributes": {"colour": "blue"}, "description": "A blue mug."\n')
    with pytest.raises(DescgenError, match=r'cat\.jsonl, line 2, column \d+: not valid JSON'):
        D.prepare(f, tmp_path/'o')
    f2 = write(tmp_path/'arr.jsonl', '["not", "an", "object"]\n')
    with pytest.raises(DescgenError, match=r'arr\.jsonl, line 1: expected a JSON object'):
        D.prepare(f2, tmp_path/'o')


def test_empty_description_is_a_counted_drop(tmp_path):
    f = write(tmp_path/'cat.csv', 'id,colour,description\n1,red,A red mug.\n2,blue,\n3,green,   \n4,black,<br/>&nbsp;\n')
    d = D.prepare(f, tmp_path/'o')
    st = card_steps(d)['empty_description']
    assert st['kind'] == 'drop' and st['count'] == 3
    assert st['examples'][0] == {'file': 'cat.csv', 'line': 3, 'field': 'description'}
    assert balanced(d)['rows_out'] == 1
    assert 'empty_description' in (d/'data_card.md').read_text()
    with pytest.raises(DescgenError, match=r"cat\.csv, line 3, field 'description': empty description"):
        D.prepare(f, tmp_path/'o2', strict=True)


def test_duplicated_ids_are_a_counted_drop(tmp_path):
    f = write(tmp_path/'cat.jsonl', ''.join(json.dumps({'id': i, 'attributes': {'colour': c}, 'description': f'A {c} mug.'}) + '\n'
                                            for i, c in [(1, 'red'), (2, 'blue'), (1, 'green'), (2, 'black')]))
    d = D.prepare(f, tmp_path/'o')
    st = card_steps(d)['duplicate_id']
    assert st['count'] == 2 and st['examples'][0] == {'file': 'cat.jsonl', 'line': 3, 'field': 'id', 'id': '1'}
    kept = sorted((p.id, p.get('colour')) for s in D.SPLITS for p in D.load_split(d, s))
    assert kept == [('1', 'red'), ('2', 'blue')]  # the first occurrence wins
    balanced(d)
    with pytest.raises(DescgenError, match=r'cat\.jsonl, line 3: id already seen'):
        D.prepare(f, tmp_path/'o2', strict=True)


def test_one_megabyte_field(tmp_path):
    big = 'y' * (1 << 20)
    f = write(tmp_path/'cat.csv', f'id,colour,description\n1,red,A red mug.\n2,blue,{big}\n3,{big},A mug.\n')
    d = D.prepare(f, tmp_path/'o')  # the csv module's 128 kB field limit does not stop the read
    st = card_steps(d)['field_too_long']
    assert st['count'] == 2
    assert st['examples'][0] == {'file': 'cat.csv', 'line': 3, 'field': 'description', 'chars': 1 << 20}
    assert st['examples'][1]['field'] == 'colour'
    assert balanced(d)['rows_out'] == 1
    # a higher limit keeps the rows; the 1 MB description is then 50x the file's median length: a counted drop
    d2 = D.prepare(f, tmp_path/'o2', max_field_chars=2_000_000)
    assert balanced(d2)['rows_out'] == 2
    st = card_steps(d2)['implausible_description']
    assert st['count'] == 1 and st['examples'][0] == {'file': 'cat.csv', 'line': 3, 'field': 'description', 'chars': 1 << 20,
                                                       'median': 10}
    # inside a JSON attributes object too
    j = write(tmp_path/'cat.jsonl', json.dumps({'id': 1, 'attributes': {'colour': 'red', 'notes': big}, 'description': 'A red mug.'}) + '\n'
                                    + json.dumps({'id': 2, 'attributes': {'colour': 'blue'}, 'description': 'A blue mug.'}) + '\n')
    st = card_steps(D.prepare(j, tmp_path/'o3'))['field_too_long']
    assert st['count'] == 1 and st['examples'][0]['field'] == 'attributes' and st['examples'][0]['line'] == 1


def test_attribute_string_that_does_not_parse(tmp_path):
    f = write(tmp_path/'cat.csv', 'id,attributes,description\n1,colour:red|size:M,A red shirt.\n2,colour=blue;size=L,A blue shirt.\n'
                                  '3,:green,A green shirt.\n4,"{""colour"": ""black""",A black shirt.\n')
    d = D.prepare(f, tmp_path/'o')
    st = card_steps(d)['attribute_parse_error']
    assert st['count'] == 3
    ex = st['examples']
    assert ex[0]['line'] == 3 and ex[0]['field'] == 'attributes' and "has no ':'" in ex[0]['problem']
    assert 'empty key' in ex[1]['problem'] and 'not valid JSON' in ex[2]['problem']
    assert balanced(d)['rows_out'] == 1
    with pytest.raises(DescgenError, match=r'cat\.csv, line 3: the attribute field does not parse.*field=.attributes'):
        D.prepare(f, tmp_path/'o2', strict=True)
    # other separators through the mapping
    d3 = D.prepare(f, tmp_path/'o3', mapping={'attributes': {'column': 'attributes', 'format': 'kv', 'pair_sep': ';', 'kv_sep': '='}})
    assert card_steps(d3)['attribute_parse_error']['count'] == 3  # now rows 1, 3 and 4 fail
    assert sorted(p.attributes for s in D.SPLITS for p in D.load_split(d3, s)) == [[('colour', 'blue'), ('size', 'L')]]


def test_bad_e2e_mr_names_file_line_field():
    with pytest.raises(DescgenError, match=r'devset\.csv, line 12, field mr: cannot parse'):
        D.parse_mr('name[The Vaults], eatType pub', 'devset.csv, line 12, field mr')


def test_misc_file_problems(tmp_path):
    with pytest.raises(DescgenError, match='unknown file type'):
        D.prepare(write(tmp_path/'cat.xml', '<x/>'), tmp_path/'o')
    with pytest.raises(DescgenError, match='the file is empty'):
        D.prepare(write(tmp_path/'empty.csv', ''), tmp_path/'o')
    with pytest.raises(DescgenError, match=r'short\.csv, line 3: 2 fields where the header has 3'):
        D.prepare(write(tmp_path/'short.csv', 'id,colour,description\n1,red,A red mug.\n2,blue\n'), tmp_path/'o')
    with pytest.raises(DescgenError, match='cannot read as Parquet'):
        D.prepare(write(tmp_path/'fake.parquet', 'not parquet'), tmp_path/'o')
    with pytest.raises(DescgenError, match='unknown mapping key'):
        D.prepare(write(tmp_path/'ok.csv', 'id,colour,description\n1,red,A red mug.\n'), tmp_path/'o', mapping={'desc': 'x'})
    with pytest.raises(DescgenError, match='neither a JSON object nor an existing .json file'):
        D.load_mapping('no/such/mapping.json')
    with pytest.raises(DescgenError, match='no such file'):
        D.prepare(tmp_path/'missing.csv')


def test_cli_reports_bad_input_with_exit_2(tmp_path, capsys):
    from descgen.cli import main
    f = write(tmp_path/'cat.jsonl', '{"id": 1, "description": "x"\n')
    assert main(['prepare', '--dataset', str(f), '--out', str(tmp_path/'o')]) == 2
    err = capsys.readouterr().err
    assert 'cat.jsonl, line 1' in err and 'Traceback' not in err


def test_reference_emptied_by_cleaning_is_a_counted_drop(tmp_path):
    # Two description columns; in row 2 the second holds only markup, which cleaning removes. The card must count that
    # reference as dropped (it was declared twice, first as a flag, so `prepare` stopped with an unbalanced card).
    f = write(tmp_path/'cat.csv', 'id,colour,d1,d2\n1,red,A red mug.,A mug in red.\n2,blue,A blue mug.,<br/>\n'
                                  '3,green,A green mug.,\n')
    d = D.prepare(f, tmp_path/'o', mapping={'description': ['d1', 'd2']}, fractions={'train': 1.0})
    c = balanced(d)
    assert (c['rows_in'], c['rows_out'], c['rows_dropped']) == (5, 4, 1)
    s = card_steps(d)['empty_reference']
    assert (s['kind'], s['count'], s['examples'][0]['line'], s['examples'][0]['field']) == ('drop', 1, 3, 'd2')


# ---------------------------------------------------------------------------------------------------------------
# The table: malformed catalogs through `descgen prepare`, as a user runs it. Each row: the file (name and bytes,
# or a function writing it), the mapping and flags, the exit status, the fragments the one-line error must hold
# (file, line or row, field where they exist), and for a run that succeeds the counted drop step with the line and
# field its first example must name. Every card written, also next to an error, must balance:
# rows_in == rows_out + rows_dropped.
import pyarrow as pa
import pyarrow.parquet as pq

HEAD = 'id,colour,description\n'
GOOD = ''.join(f'{i},red,A red mug number {i}.\n' for i in range(1, 6))  # lines 2-6
JL = lambda *recs: ''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in recs)
OK = {'id': 'a', 'attributes': {'colour': 'red'}, 'description': 'A red mug.'}


def parquet(cols: dict, types: dict = None):
    def write(p):
        pq.write_table(pa.table({k: pa.array(v, (types or {}).get(k)) for k, v in cols.items()}), p)
    return write


CASES = [  # (id, file name, content, mapping, flags, exit status, error fragments, (drop step, example subset))
    # CSV: structure
    ('csv-stray-quote', 'cat.csv', HEAD + '1,red,A red mug.\n2,blue,"A blue mug\n' + GOOD * 6, None, [], 2,
     ['cat.csv, line 3', 'spans 31 lines', 'unmatched quote'], None),
    ('csv-stray-quote-strict', 'cat.csv', HEAD + '1,red,A red mug.\n2,blue,"A blue mug\n' + GOOD * 6, None,
     ['--strict'], 2, ['cat.csv, line 3', 'unmatched quote'], None),
    ('csv-short-row', 'cat.csv', HEAD + GOOD + '7,blue\n', None, [], 2,
     ['cat.csv, line 7', '2 fields where the header has 3'], None),
    ('csv-multiline-record-first-line', 'cat.csv', HEAD + GOOD + '7,blue,"A blue\nmug, two lines",x\n', None, [], 2,
     ['cat.csv, line 7:', '4 fields'], None),
    ('csv-duplicate-columns', 'cat.csv', 'id,colour,colour,description\n1,red,blue,A mug.\n', None, [], 2,
     ['cat.csv, line 1', "duplicated column name(s) ['colour']"], None),
    ('csv-missing-description', 'cat.csv', 'id,colour,text\n1,red,A red mug.\n', None, [], 2,
     ['cat.csv', "missing required column 'description'"], None),
    ('csv-empty-file', 'cat.csv', '', None, [], 2, ['cat.csv', 'the file is empty'], None),
    # CSV: bytes and encodings
    # (the encoding named is charset-normalizer's guess: test_the_named_encoding_reads_the_file checks it is right)
    ('csv-latin1', 'cat.csv', (HEAD + GOOD + '7,beige,Caf\xe9 cr\xe8me mug.\n').encode('latin-1'), None, [], 2,
     ['cat.csv, line 7, column', 'not valid utf-8 (byte 0xe9)', 'it looks like cp1252'], None),
    ('csv-cp1252', 'cat.csv', (HEAD + GOOD + '7,red,\u201cSmart\u201d mug \u2013 20\u20ac.\n').encode('cp1252'), None,
     [], 2, ['cat.csv, line 7, column 7: not valid utf-8 (byte 0x93)', 'pass encoding "cp1252"'], None),
    ('csv-utf16', 'cat.csv', (HEAD + GOOD).encode('utf-16'), None, [], 2,
     ['cat.csv: not utf-8 text', 'it looks like utf-16 (charset-normalizer): pass encoding "utf-16"'], None),
    ('csv-utf16-le-no-bom', 'cat.csv', (HEAD + GOOD).encode('utf-16-le'), None, [], 2,
     ['cat.csv', 'pass encoding "utf-16-le"'], None),
    ('csv-utf16-read-as-latin1', 'cat.csv', (HEAD + GOOD).encode('utf-16'), {'encoding': 'latin-1'}, [], 2,
     ['cat.csv: not latin-1 text', 'it looks like utf-16'], None),
    ('csv-gbk', 'cat.csv', 'id,颜色,description\n1,红色,一个红色的杯子。\n2,蓝色,一个蓝色的杯子。\n'.encode('gbk'), None, [], 2,
     ['cat.csv, line 1', 'it looks like gb18030 (charset-normalizer): pass encoding "gb18030" '
                         '(mapping "encoding": "gb18030")'], None),
    ('csv-nul', 'cat.csv', HEAD + '1,red,A red mug.\n2,blue,A blue\x00 mug.\n3,green,A green mug.\n', None, [], 0, [],
     ('nul_byte', {'file': 'cat.csv', 'line': 3, 'field': 'description'})),
    ('csv-nul-strict', 'cat.csv', HEAD + '1,red,A red mug.\n2,blue,A blue\x00 mug.\n', None, ['--strict'], 2,
     ['cat.csv, line 3', "field='description'", 'NUL'], None),
    # CSV: rows
    ('csv-blank-rows', 'cat.csv', HEAD + '1,red,A red mug.\n\n,,\n2,blue,A blue mug.\n', None, [], 0, [],
     ('blank_row', {'file': 'cat.csv', 'line': 3})),
    ('csv-implausible-description', 'cat.csv', HEAD + GOOD + '7,blue,' + 'A very long text. ' * 600 + '\n', None, [],
     0, [], ('implausible_description', {'file': 'cat.csv', 'line': 7, 'field': 'description'})),
    ('csv-empty-description', 'cat.csv', HEAD + GOOD + '7,blue,\n', None, [], 0, [],
     ('empty_description', {'file': 'cat.csv', 'line': 7, 'field': 'description'})),
    ('csv-duplicate-id', 'cat.csv', HEAD + GOOD + '3,blue,A blue mug.\n', None, [], 0, [],
     ('duplicate_id', {'file': 'cat.csv', 'line': 7, 'field': 'id'})),
    ('csv-attribute-parse', 'cat.csv', 'id,attributes,description\n1,colour:red,A red mug.\n2,colour=blue,A mug.\n',
     None, [], 0, [], ('attribute_parse_error', {'file': 'cat.csv', 'line': 3, 'field': 'attributes'})),
    ('csv-field-too-long', 'cat.csv', HEAD + GOOD + '7,' + 'x' * 150_000 + ',A mug.\n', None, [], 0, [],
     ('field_too_long', {'file': 'cat.csv', 'line': 7, 'field': 'colour'})),
    ('csv-header-only', 'cat.csv', HEAD, None, [], 2, ['cat.csv: 0 products out of 0 rows in', 'data_card.md'], None),
    ('csv-every-row-dropped', 'cat.csv', HEAD + '1,red,\n2,blue, \n', None, [], 2,
     ['0 products out of 2 rows in (2 dropped)', 'data_card.md'], None),
    ('csv-bom-utf_8', 'cat.csv', (HEAD + GOOD).encode('utf-8-sig'), {'encoding': 'utf_8'}, [], 0, [], None),
    # JSON lines
    ('jsonl-broken-line', 'cat.jsonl', JL(OK) + '{"id": "b", "description": "x"\n', None, [], 2,
     ['cat.jsonl, line 2, column', 'not valid JSON'], None),
    ('jsonl-empty', 'cat.jsonl', '', None, [], 2, ['cat.jsonl: no records'], None),
    ('jsonl-blank-lines-only', 'cat.jsonl', '\n\n', None, [], 2, ['cat.jsonl: no records', 'only blank lines'], None),
    ('jsonl-not-an-object', 'cat.jsonl', JL(OK) + '["a", "list"]\n', None, [], 2,
     ['cat.jsonl, line 2: expected a JSON object, found list'], None),
    ('jsonl-u2028-u0085-valid', 'cat.jsonl', JL(OK, {**OK, 'id': 'b', 'description': 'One\u2028two\u0085three.'}),
     None, [], 0, [], None),
    ('jsonl-description-number', 'cat.jsonl', JL(OK, {**OK, 'id': 'b', 'description': 5}), None, [], 0, [],
     ('description_not_text', {'file': 'cat.jsonl', 'line': 2, 'field': 'description', 'type': 'int'})),
    ('jsonl-description-number-strict', 'cat.jsonl', JL(OK, {**OK, 'id': 'b', 'description': 5}), None,
     ['--strict'], 2, ['cat.jsonl, line 2', "field='description'", 'not text'], None),
    ('jsonl-nul-escape', 'cat.jsonl', JL(OK, {**OK, 'id': 'b', 'attributes': {'colour': 'bl\x00ue'}}), None, [], 0,
     [], ('nul_byte', {'file': 'cat.jsonl', 'line': 2, 'field': 'attributes'})),
    ('jsonl-gb18030', 'cat.jsonl', '{"id": "a", "颜色": "红色", "description": "一个红色的杯子。"}\n'.encode('gb18030'), None,
     [], 2, ['cat.jsonl, line 1', 'pass encoding "gb18030"'], None),
    ('jsonl-latin1', 'cat.jsonl', (JL(OK) + '{"id": "b", "description": "caf\xe9"}\n').encode('latin-1'), None, [], 2,
     ['cat.jsonl, line 2, column', 'not valid utf-8'], None),
    ('jsonl-blank-line-counted', 'cat.jsonl', JL(OK) + '\n' + JL({**OK, 'id': 'b'}), None, [], 0, [],
     ('blank_row', {'file': 'cat.jsonl', 'line': 2})),
    # JSON
    ('json-object', 'cat.json', json.dumps({'products': [OK]}), None, [], 2,
     ['cat.json: expected a JSON list of records', "keys ['products']"], None),
    ('json-broken', 'cat.json', '[' + json.dumps(OK) + ',\n{"id": 2,}]', None, [], 2,
     ['cat.json, line 2', 'not valid JSON'], None),
    ('json-not-an-object', 'cat.json', json.dumps([OK, [1, 2]]), None, [], 2,
     ['cat.json, row 2: expected a JSON object, found list'], None),
    ('json-empty-list', 'cat.json', '[]', None, [], 2, ['cat.json: no records (the file holds an empty list)'], None),
    # Parquet
    ('parquet-binary-column', 'cat.parquet',
     parquet({'id': ['1', '2'], 'colour': [b'red', b'blue'], 'description': ['A red mug.', 'A blue mug.']},
             {'colour': pa.binary()}), None, [], 0, [], None),
    ('parquet-binary-not-utf8', 'cat.parquet',
     parquet({'id': ['1', '2'], 'colour': [b'red', b'\xffblue'], 'description': ['A red mug.', 'A blue mug.']},
             {'colour': pa.binary()}), None, [], 2, ["cat.parquet, row 2, field 'colour'", 'not UTF-8'], None),
    ('parquet-description-number', 'cat.parquet',
     parquet({'id': ['1', '2'], 'colour': ['red', 'blue'], 'description': [1.5, 2.5]}), None, [], 2,
     ['0 products out of 2 rows in (2 dropped)'], None),
    ('parquet-not-parquet', 'cat.parquet', 'not parquet', None, [], 2, ['cat.parquet', 'cannot read as Parquet'], None),
    # the mapping
    ('mapping-description-number', 'cat.csv', HEAD + GOOD, {'description': 5}, [], 2,
     ['mapping "description": expected a column name or a list of column names, got int 5'], None),
    ('mapping-rename-list', 'cat.csv', HEAD + GOOD, {'rename': ['colour', 'color']}, [], 2,
     ['mapping "rename": expected an object'], None),
    ('mapping-unknown-encoding', 'cat.csv', HEAD + GOOD, {'encoding': 'utf-99'}, [], 2,
     ['mapping "encoding": unknown encoding'], None),
    ('mapping-unknown-key', 'cat.csv', HEAD + GOOD, {'desc': 'description'}, [], 2,
     ["unknown mapping key(s) ['desc']"], None),
    ('mapping-attributes-format', 'cat.csv', HEAD + GOOD, {'attributes': {'column': 'colour', 'format': 'xml'}}, [],
     2, ['mapping "attributes": expected'], None),
    ('mapping-delimiter', 'cat.csv', HEAD + GOOD, {'delimiter': ';;'}, [], 2, ['mapping "delimiter"'], None),
    ('mapping-missing-column', 'cat.csv', HEAD + GOOD, {'id': 'sku'}, [], 2,
     ['cat.csv', "missing required column 'sku' (id)"], None),
    ('mapping-not-json', 'cat.csv', HEAD + GOOD, '{"id": ', [], 2, ['--mapping: not valid JSON'], None),
    # the output path
    ('out-is-a-file', 'cat.csv', HEAD + GOOD, None, ['--out', 'FILE'], 2, ['is an existing file'], None),
]


@pytest.mark.parametrize('name,content,mapping,flags,rc,fragments,drop', [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_table(tmp_path, capsys, name, content, mapping, flags, rc, fragments, drop):
    from descgen.cli import main
    f = tmp_path/name
    if callable(content): content(f)
    elif isinstance(content, bytes): f.write_bytes(content)
    else: f.write_bytes(content.encode('utf-8'))
    out = tmp_path/'out'
    if 'FILE' in flags:
        out = tmp_path/'taken.txt'
        out.write_text('x')
        flags = [a for a in flags if a not in ('--out', 'FILE')]
    argv = ['prepare', '--dataset', str(f), '--out', str(out), *flags]
    if mapping is not None: argv += ['--mapping', mapping if isinstance(mapping, str) else json.dumps(mapping)]
    got = main(argv)
    err = capsys.readouterr().err
    assert got == rc, err
    assert 'Traceback' not in err
    for frag in fragments: assert frag in err, (frag, err)
    if (out/'data_card.json').exists():
        c = balanced(out)
        if drop is not None:
            step, example = drop
            s = card_steps(out)[step]
            assert s['kind'] == 'drop' and s['count'] >= 1, s
            assert example.items() <= s['examples'][0].items(), s['examples'][0]
    else: assert rc == 2 and drop is None


def test_bad_input_table_is_big_enough():
    kinds = {c[1].rsplit('.', 1)[1] for c in CASES} | {'mapping' for c in CASES if c[3] is not None}
    assert len(CASES) >= 30 and kinds >= {'csv', 'jsonl', 'json', 'parquet', 'mapping'}


def test_values_as_text(tmp_path):
    # Parquet binary values decoded, nested values as compact JSON, a UTF-8 BOM stripped from the first column name
    f = tmp_path/'cat.parquet'
    parquet({'id': ['1'], 'colour': [b'red'], 'description': ['A red mug.']}, {'colour': pa.binary()})(f)
    d = D.prepare(f, tmp_path/'o1', fractions={'train': 1.0})
    assert D.load_split(d, 'train')[0].attributes == [('colour', 'red')]
    j = write(tmp_path/'cat.jsonl', JL({**OK, 'attributes': {'size': {'w': 3, 'h': 4}, 'tags': [{'a': 1}]}}))
    d = D.prepare(j, tmp_path/'o2', fractions={'train': 1.0})
    assert D.load_split(d, 'train')[0].attributes == [('size', '{"w":3,"h":4}'), ('tags', '{"a":1}')]
    b = tmp_path/'bom.csv'
    b.write_bytes((HEAD + GOOD).encode('utf-8-sig'))
    for enc in ('utf_8', 'UTF8', 'utf-8'):
        d = D.prepare(b, tmp_path/f'o-{enc}', mapping={'encoding': enc}, fractions={'train': 1.0})
        assert sorted(p.id for p in D.load_split(d, 'train')) == ['1', '2', '3', '4', '5']   # 'id', not '\ufeffid'


def test_zero_products_card_is_written_but_not_reused(tmp_path):
    f = write(tmp_path/'cat.csv', HEAD + '1,red,\n')
    with pytest.raises(DescgenError, match=r'0 products out of 1 rows in \(1 dropped\)'):
        D.prepare(f)   # the cached folder: the card is there, but no config.json, so the next call fails again
    with pytest.raises(DescgenError, match='0 products') as e:
        D.prepare(f)
    card = Path(str(e.value).rsplit('the data card says why: ', 1)[1])   # the message names the card it wrote
    assert card.name == 'data_card.md' and card.exists() and not (card.parent/'config.json').exists()
