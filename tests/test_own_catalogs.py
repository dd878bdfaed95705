"""Bring your own catalog (issue #16, English part): boilerplate shared by most products is reported, warned about
and stripped as a counted step; language detection and overrides; mapping constants; generate --mapping."""
import csv, json
from pathlib import Path
import pytest
from descgen import data as D

COLOURS = 'red blue green black white grey pink navy teal olive maroon beige'.split()
KINDS = ['shirt', 'dress', 'kurta']
FITS = 'regular slim relaxed loose tailored boxy straight'.split()
SLOGAN = "Welcome to Shopmart, India's favourite marketplace for fashion."


def write_boilerplate_catalog(path: Path, n: int = 36, with_slogan: int = 30) -> Path:
    "An English catalog where `with_slogan` of `n` references start with the same marketplace sentence."
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['id', 'colour', 'type', 'description'])
        for i in range(n):
            c, k = COLOURS[i % len(COLOURS)], KINDS[i % len(KINDS)]
            desc = f'A {c} cotton {k}, style number {i}. It has a {FITS[i % len(FITS)]} fit.'
            if i < with_slogan: desc = f'{SLOGAN} {desc}'
            w.writerow([f'p{i}', c, k, desc])
    return path


def test_boilerplate_stripped_and_counted(tmp_path, capsys):
    f = write_boilerplate_catalog(tmp_path/'shop.csv')
    m = {'id': 'id', 'description': 'description', 'attributes': ['colour', 'type']}
    d = D.prepare(f, tmp_path/'out', mapping=m)
    card = D.load_card(d)
    steps = {s['step']: s for s in card['steps']}
    assert steps['shared_sentences']['count'] == 30 and steps['shared_sentences']['kind'] == 'alter'
    assert steps['shared_sentences_only']['count'] == 0
    assert card['rows_in'] == card['rows_out'] == 36  # stripping alters, drops nothing here
    refs = [r for s in D.SPLITS for p in D.load_split(d, s) for r in p.references]
    assert not any('Shopmart' in r for r in refs) and all(r.startswith('A ') for r in refs)
    assert card['warnings'] == [] and 'warning' not in capsys.readouterr().err
    md = (d/'data_card.md').read_text(encoding='utf-8')
    assert 'shared_sentences' in md and 'Shopmart' in md  # the step's examples show what was removed


def test_boilerplate_reported_and_warned_when_kept(tmp_path, capsys):
    f = write_boilerplate_catalog(tmp_path/'shop.csv')
    m = {'id': 'id', 'description': 'description', 'attributes': ['colour', 'type']}
    d = D.prepare(f, tmp_path/'out', mapping=m, strip_shared=0)
    card = D.load_card(d)
    top = card['shared']['sentences'][0]
    assert top == {'text': SLOGAN, 'products': 30, 'share': round(30 / 36, 4)}
    assert card['shared']['openings'][0]['text'] == "welcome to shopmart, india's"
    assert any(w.startswith('train:') and 'share the sentence' in w for w in card['warnings'])
    err = capsys.readouterr().err
    assert 'warning: train:' in err and '--strip-shared' in err
    md = (d/'data_card.md').read_text(encoding='utf-8')
    assert '## Shared sentences' in md and '## Warnings' in md and SLOGAN in md
    refs = [r for s in D.SPLITS for p in D.load_split(d, s) for r in p.references]
    assert sum(r.startswith(SLOGAN) for r in refs) == 30


def test_boilerplate_only_reference_is_a_counted_drop(tmp_path):
    f = write_boilerplate_catalog(tmp_path/'shop.csv')
    with open(f, 'a', newline='', encoding='utf-8') as fh: csv.writer(fh).writerow(['p99', 'red', 'shirt', SLOGAN])
    m = {'id': 'id', 'description': 'description', 'attributes': ['colour', 'type']}
    card = D.load_card(D.prepare(f, tmp_path/'out', mapping=m))
    steps = {s['step']: s['count'] for s in card['steps']}
    assert steps['shared_sentences_only'] == 1 and card['rows_out'] == 36 and card['rows_in'] == 37


def test_cli_strip_shared_flag(tmp_path, capsys):
    f = write_boilerplate_catalog(tmp_path/'shop.csv')
    (tmp_path/'m.json').write_text(json.dumps({'id': 'id', 'description': 'description',
                                               'attributes': ['colour', 'type']}))
    assert D.prepare_cli(['--dataset', str(f), '--mapping', str(tmp_path/'m.json'), '--out', str(tmp_path/'o'),
                          '--strip-shared', '0']) == 0
    assert D.load_card(tmp_path/'o')['warnings']
    assert json.loads((tmp_path/'o'/'config.json').read_text())['strip_shared'] == 0
    assert 'warning:' in capsys.readouterr().err


ZH = [('蓝色', '连衣裙', '这款蓝色连衣裙采用修身版型，显瘦又优雅。'),
      ('红色', 'T恤', '红色T恤百搭舒适，适合日常穿着。'),
      ('白色', '衬衫', '白色衬衫简约大方，通勤休闲两相宜。'),
      ('黑色', '半身裙', '黑色半身裙垂感好，显高显瘦。')]


def write_zh_catalog(path: Path, n: int = 24) -> Path:
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['id', '颜色', '类型', 'description'])
        for i in range(n):
            c, k, d = ZH[i % len(ZH)]
            w.writerow([f'z{i}', c, k, f'{d}编号{i}。'])
    return path


def _langs(d):
    return {p.lang for s in D.SPLITS for p in D.load_split(d, s)}


def test_language_detected_constant_and_flag(tmp_path, capsys):
    f = write_zh_catalog(tmp_path/'zh.csv')
    d = D.prepare(f, tmp_path/'a')
    assert _langs(d) == {'zh'} and D.load_card(d)['notes']['lang'] == 'zh (detected)'
    d = D.prepare(f, tmp_path/'b', mapping={'lang': {'const': 'en'}})
    assert _langs(d) == {'en'} and D.load_card(d)['notes']['lang'] == 'en (mapping)'
    assert D.prepare_cli(['--dataset', str(f), '--out', str(tmp_path/'c'), '--lang', 'zh',
                          '--mapping', '{"lang": {"const": "en"}}']) == 0
    assert _langs(tmp_path/'c') == {'zh'}   # --lang overrides the mapping
    assert 'lang: zh' in capsys.readouterr().out
    e = write_boilerplate_catalog(tmp_path/'en.csv')
    assert _langs(D.prepare(e, tmp_path/'e', mapping={'attributes': ['colour', 'type']})) == {'en'}


def test_mapping_column_list_with_parsed_column_and_ruby_hash(tmp_path):
    f = tmp_path/'specs.csv'
    with open(f, 'w', newline='', encoding='utf-8') as fh:
        w = csv.writer(fh)
        w.writerow(['sku', 'colour', 'specs', 'description'])
        for i in range(12):
            ruby = f'{{"Fit"=>"slim", "Sleeve"=>"{["long", "short"][i % 2]}"}}'
            spec = ruby if i % 3 else f'Fit: regular; Pockets: {i}'
            w.writerow([f's{i}', COLOURS[i], spec, f'A {COLOURS[i]} shirt number {i}.'])
        w.writerow(['bad', 'red', '{not a spec', 'A red shirt that will be dropped.'])
    m = {'id': 'sku', 'attributes': ['colour', {'column': 'specs'}], 'category': {'const': 'shirts'}}
    d = D.prepare(f, tmp_path/'o', mapping=m)
    ps = {p.id: p for s in D.SPLITS for p in D.load_split(d, s)}
    assert ps['s1'].attributes == [('colour', 'blue'), ('Fit', 'slim'), ('Sleeve', 'short')]
    assert ps['s0'].attributes == [('colour', 'red'), ('Fit', 'regular'), ('Pockets', '0')]
    assert {p.category for p in ps.values()} == {'shirts'} and len(ps) == 12
    steps = {s['step']: s for s in D.load_card(d)['steps']}
    assert steps['attribute_parse_error']['count'] == 1
    assert steps['attribute_parse_error']['examples'][0]['field'] == 'specs'


def test_unparsable_specs_everywhere_is_an_error(tmp_path):
    f = tmp_path/'specs.csv'
    f.write_text('id,specs,description\n1,{oops,A cup.\n2,{oops too,A mug.\n', encoding='utf-8')
    with pytest.raises(D.DescgenError, match='0 products'):
        D.prepare(f, tmp_path/'o', mapping={'attributes': {'column': 'specs'}})


def test_no_mapping_lists_attribute_columns_with_hint(tmp_path, capsys):
    f = tmp_path/'dump.csv'
    with open(f, 'w', newline='', encoding='utf-8') as fh:
        w = csv.writer(fh)
        w.writerow(['product_id', 'colour', 'image_url', 'description'])
        for i in range(10):
            w.writerow([f'P{i}', COLOURS[i], f'https://cdn.example/{i}.jpg', f'A {COLOURS[i]} cup.'])
    d = D.prepare(f, tmp_path/'o')
    err = capsys.readouterr().err
    assert "the attributes are the columns ['product_id', 'colour', 'image_url']" in err
    assert 'hint: product_id: an id or a URL by its name; image_url: an id or a URL by its name' in err
    assert D.load_card(d)['notes']['suspicious_columns'] == {'product_id': 'an id or a URL by its name',
                                                             'image_url': 'an id or a URL by its name'}
