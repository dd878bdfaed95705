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
