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
