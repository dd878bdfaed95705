"""Tests for descgen.metrics: each metric on hand-checked cases, the published E2E TGen scores,
faithfulness on exact synthetic truths, and every kind of bad input."""
import json, math, random, re, subprocess, sys
from pathlib import Path
import pytest
import sacrebleu
from descgen.core import DescgenError
from descgen import metrics as M
from descgen.overlap import _nist_penalty

DESCGEN = str(Path(sys.executable).parent / 'descgen')  # the console script of this environment


# ---- BLEU / NIST (mteval-v13a as in the E2E scorer) ----

def test_tokenize_is_mteval_13a_with_ascii_lowercasing():
    assert M.mteval_tokenize('Blue Spice, a coffee shop.') == ['blue', 'spice', ',', 'a', 'coffee', 'shop', '.']
    assert M.mteval_tokenize('£20-25 and 3.5') == ['£20', '-', '25', 'and', '3.5']
    assert M.mteval_tokenize('ÉCLAIR') == ['Éclair']  # non-ASCII letters are not lowercased by mteval's tr/[A-Z]/[a-z]/


def test_bleu_by_hand_with_mteval_smoothing():
    # 5/6, 3/5, 1/4 and 0/3 (smoothed to 1/(2*3)) n-gram precisions, equal lengths
    r = M.e2e_bleu_nist(['the cat sat on the mat'], [['the cat was on the mat']])
    assert r['bleu'] == pytest.approx(100 * (5/6 * 3/5 * 1/4 * 1/6) ** 0.25, abs=1e-9)
    assert r['bleu_bp'] == 1.0


def test_bleu_brevity_penalty_uses_closest_reference():
    # output of 2 tokens; references of 3 and 6 tokens: closest is 3 -> BP = exp(1 - 3/2)
    r = M.e2e_bleu_nist(['a b'], [['a b c', 'a b c d e f']])
    assert r['ref_len'] == 3
    assert r['bleu_bp'] == pytest.approx(math.exp(1 - 3 / 2))


def test_bleu_agrees_with_sacrebleu_on_multi_reference_corpus():
    hyps = ['The cat is on the mat .', 'There is a cat on the mat', 'a dog runs in the park today']
    refs = [['the cat is on the mat', 'a cat sits on the mat'], ['there is a cat on the mat'], ['a dog runs in a park', 'the dog runs in the park today']]
    streams = [[g[i] if i < len(g) else None for g in refs] for i in range(2)]
    sb = sacrebleu.corpus_bleu(hyps, streams, lowercase=True, tokenize='13a')
    assert M.e2e_bleu_nist(hyps, refs)['bleu'] == pytest.approx(sb.score, abs=1e-9)


def test_nist_by_hand():
    # refs 'a b', 'a c': info(a)=log2(4/2)=1, info(b)=log2(4/1)=2, info(a b)=log2(2/1)=1 -> (1+2)/2 + 1/1
    assert M.e2e_bleu_nist(['a b'], [['a b', 'a c']])['nist'] == pytest.approx(2.5)
    assert _nist_penalty(2 / 3) == pytest.approx(0.5)
    assert _nist_penalty(1.2) == 1.0


# ---- ROUGE-L, CIDEr-D, METEOR, chrF, diversity, Chinese ----

def test_rouge_l_coco_by_hand():
    assert M.rouge_l(['the cat sat on the mat'], [['the cat was on the mat']])['rouge_l'] == pytest.approx(100 * 5 / 6)
    # P and R are maxima over references (P from either, R=1 from 'a b'), beta=1.2
    assert M.rouge_l(['a b c d'], [['a b', 'c d e f g h']])['rouge_l'] == pytest.approx(100 * 2.44 * 0.5 / (1 + 1.44 * 0.5))
    assert M.rouge_l([''], [['a b']])['rouge_l'] == 0.0


def test_cider_d_by_hand():
    # idf of 'a' is log(2/2)=0; b, c, 'a b', 'a c' carry weight; orders 1 and 2 have cosine 1 -> 10*(1+1)/4
    r = M.cider_d(['a b', 'a c'], [['a b'], ['a c']])
    assert r['cider'] == pytest.approx(5.0)
    assert M.cider_d(['b a', 'x y'], [['a b'], ['a c']])['per_example'][1] == 0.0


def test_coco_tokenize_drops_punctuation_and_splits_clitics():
    assert M.coco_tokenize("It isn't kid-friendly, it's £20-25.") == ['it', 'is', "n't", 'kid-friendly', 'it', "'s", '£', '20-25']


def test_meteor_unavailable_is_none_with_reason_never_zero():
    ok, why = M.wordnet_status()
    m = M.meteor(['the cat sat'], [['the cat sat']])
    if ok:  # one chunk of 3 matched words, METEOR 1.5 parameters
        assert m['meteor'] == pytest.approx(100 * (1 - 0.6 * (1 / 3) ** 0.2), abs=1e-6)
    else:
        assert m['meteor'] is None and 'WordNet' in m['meteor_reason']
        s = M.score(['the cat sat'], [['the cat sat']])
        assert s['meteor'] is None and s['meteor_reason'] and s['meteor_exact_stem'] == pytest.approx(100 * (1 - 0.6 * (1 / 3) ** 0.2), abs=1e-6)
    es = M.meteor(['the cats sat on the mat', 'xyz'], [['the cat sat on the mat'], ['a b']], synonyms=False, params='nltk')
    assert 90 < es['per_example'][0] < 100 and es['per_example'][1] == 0.0
    # METEOR 1.5 parameters by hand: all 6 words matched in one chunk -> 1 - 0.6 * (1/6)^0.2
    m15 = M.meteor(['the cats sat on the mat'], [['the cat sat on the mat']], synonyms=False)
    assert m15['meteor'] == pytest.approx(100 * (1 - 0.6 * (1 / 6) ** 0.2), abs=1e-6)


def test_chrf_matches_sacrebleu():
    c = M.chrf(['the cat sat', 'a dog'], [['the cat sat down', 'a cat'], ['a dog barks']])
    assert c['chrf'] == pytest.approx(sacrebleu.corpus_chrf(['the cat sat', 'a dog'], [['the cat sat down', 'a dog barks'], ['a cat', None]]).score)
    assert c['per_example'][1] == pytest.approx(sacrebleu.sentence_chrf('a dog', ['a dog barks']).score)


def test_diversity_by_hand():
    d = M.diversity(['a b a b a b', 'a c', ''])
    assert (d['distinct_1'], d['distinct_2']) == (3 / 8, 3 / 6)
    assert d['per_example'][0]['repetition'] == pytest.approx(1 / 3)
    assert d['avg_len'] == pytest.approx(8 / 3) and d['n_empty'] == 1


def test_chinese_char_metrics():
    z = M.zh_scores(['红色 连衣裙', '这款连衣裙'], [['蓝色连衣裙'], ['这款连衣裙']])
    assert z['per_example'][0]['rouge1_char'] == pytest.approx(80.0)  # 4 of 5 characters on each side
    assert z['per_example'][1]['bleu4_char'] == pytest.approx(100.0)
    s = M.score(['这款连衣裙采用纯棉面料'], [['这款连衣裙采用纯棉面料']], lang='zh')
    assert s['bleu'] == pytest.approx(100.0) and s['bleu4_char'] == pytest.approx(100.0)


# ---- attribute coverage and hallucination ----

MR = [('name', 'Blue Spice'), ('eatType', 'coffee shop'), ('area', 'city centre')]


def test_issue_example_hallucinates_food_and_rating():
    text = 'Blue Spice is a coffee shop that serves Chinese food and its customer rating is average.'
    s = M.attribute_score(MR, text)
    assert [h['key'] for h in s['hallucinated']] == ['food', 'customer rating']
    assert [h['span'] for h in s['hallucinated']] == ['Chinese', 'customer rating is average']
    assert s['missing'] == [['area', 'city centre']]
    assert s['score'] == pytest.approx((2 - 2) / 3)
    assert {h['type'] for h in s['hallucinated']} == {'unsupported'}


def test_function_word_values_are_not_mentions():
    sch = {'brand': ['AND', 'With', 'Roadster'], 'colour': ['black', 'white']}
    s = M.attribute_score([('brand', 'Roadster'), ('colour', 'black')], 'Black and white top with a print, by Roadster.', sch)
    assert [(h['key'], h['span'], h['type']) for h in s['hallucinated']] == [('colour', 'white', 'contradiction')]


def test_faithful_e2e_text_and_equivalent_values():
    assert M.attribute_score(MR, 'In the centre of the city, Blue Spice is a coffee shop.')['score'] == 1.0
    fam = [('name', 'The Eagle'), ('familyFriendly', 'no'), ('priceRange', 'less than £20'), ('customer rating', '5 out of 5')]
    s = M.attribute_score(fam, 'The Eagle is cheap, highly rated and not kid-friendly.')
    assert s['coverage'] == 1.0 and s['hallucinated'] == []
    s = M.attribute_score(fam, 'The Eagle is family friendly and expensive, rated 1 out of 5.')
    assert [h['key'] for h in s['hallucinated']] == ['familyFriendly', 'priceRange', 'customer rating']
    assert s['covered'] == [['name', 'The Eagle']]


def test_name_mentions_inside_other_values_are_not_hallucinations():
    mr = [('name', 'The Vaults'), ('eatType', 'pub'), ('near', 'Raja Indian Cuisine')]
    s = M.attribute_score(mr, 'The Vaults is a pub near Raja Indian Cuisine.')
    assert s['hallucinated'] == [] and s['coverage'] == 1.0  # 'Indian' inside the near value is not a food


def test_colour_price_and_text_matchers():
    p = [('colour', 'navy'), ('material', 'organic cotton'), ('price', 'Rs. 1,299')]
    sch = {'colour': ['navy', 'red', 'grey'], 'material': ['cotton', 'organic cotton', 'linen'], 'price': ['Rs. 1,299', 'Rs. 499']}
    assert M.attribute_score(p, 'A navy blue shirt in organic cotton for 1299 rupees.', sch)['score'] == 1.0
    r = M.attribute_score(p, 'A red and gray shirt in linen, Rs. 499.', sch)
    assert [(h['key'], h['span']) for h in r['hallucinated']] == [('colour', 'red'), ('colour', 'gray'), ('material', 'linen'), ('price', 'Rs. 499')]
    assert r['coverage'] == 0.0
    # a colour outside the schema is still a colour
    assert [h['span'] for h in M.attribute_score(p, 'A purple shirt.', sch)['hallucinated']] == ['purple']


def test_synthetic_generator_descriptions_are_fully_covered_and_faithful():
    from descgen.data import synthetic_products, synthetic_schema
    ps = synthetic_products(80, seed=11)
    r = M.faithfulness([p.references[0] for p in ps], ps, synthetic_schema())
    assert (r['attr_coverage'], r['hallucination_rate']) == (1.0, 0.0)


def _synthetic():
    from descgen.data import synthetic_schema
    sch = synthetic_schema()
    keys = [k for k in ['colour', 'material', 'gender', 'price', 'fit', 'pattern', 'occasion'] if k in sch]
    rng = random.Random(1)
    prods = [[(k, rng.choice(sch[k])) for k in keys] for _ in range(30)]
    return sch, prods


def _realise(attrs):
    return ' '.join(f'The {k} is {v}.' for k, v in attrs)


@pytest.mark.parametrize('m', [1, 7, 30])
def test_synthetic_drop_one_attribute_moves_coverage_exactly(m):
    sch, prods = _synthetic()
    base = M.faithfulness([_realise(a) for a in prods], prods, sch)
    assert (base['attr_coverage'], base['hallucination_rate']) == (1.0, 0.0)
    outs = [_realise(a[:1] + a[2:]) if i < m else _realise(a) for i, a in enumerate(prods)]
    r = M.faithfulness(outs, prods, sch)
    assert r['attr_coverage'] == pytest.approx(1 - m / sum(map(len, prods)), abs=1e-12)
    assert r['hallucination_rate'] == 0.0
    assert all(e['missing'] == [list(prods[i][1])] for i, e in enumerate(r['per_example'][:m]))


@pytest.mark.parametrize('m', [1, 7, 30])
def test_synthetic_swap_one_value_moves_coverage_and_hallucination_exactly(m):
    sch, prods = _synthetic()
    def swap(a):
        k, v = a[0]
        w = next(x for x in sch[k] if not set(x.lower().split()) & set(v.lower().split()))
        return [(k, w)] + a[1:], w
    outs = [_realise(swap(a)[0]) if i < m else _realise(a) for i, a in enumerate(prods)]
    r = M.faithfulness(outs, prods, sch)
    assert r['attr_coverage'] == pytest.approx(1 - m / sum(map(len, prods)), abs=1e-12)
    assert r['hallucination_rate'] == pytest.approx(m / len(prods))
    assert r['hallucinations_per_output'] == pytest.approx(m / len(prods))
    assert r['contradiction_rate'] == pytest.approx(m / len(prods))
    for a, e in zip(prods[:m], r['per_example'][:m]):
        assert [h['span'].lower() for h in e['hallucinated']] == [swap(a)[1].lower()]
        assert e['hallucinated'][0]['type'] == 'contradiction'


def test_schema_from_products_knows_the_e2e_ontology():
    sch = M.schema_from_products([[('name', 'A'), ('eatType', 'pub')]])
    assert 'food' in sch and 'familyFriendly' in sch and sch['name'] == ['A']


# ---- score() and bad input ----

def test_score_returns_all_metrics_and_counts_empty_predictions():
    s = M.score(['Blue Spice is a coffee shop in the city centre.', ''],
                [['Blue Spice is a coffee shop in the city centre.'], ['The Eagle is a pub.']],
                attributes=[MR, [('name', 'The Eagle'), ('eatType', 'pub')]])
    for k in ['bleu', 'nist', 'rouge_l', 'cider', 'meteor', 'chrf', 'attr_coverage', 'hallucination_rate', 'distinct_2', 'avg_len']:
        assert k in s
    assert s['n_empty'] == 1 and len(s['per_example']) == 2
    assert s['per_example'][1]['bleu'] == 0.0 and s['per_example'][1]['attr_coverage'] == 0.0
    assert s['attr_coverage'] == pytest.approx(3 / 5)


def test_count_mismatch_names_both_counts():
    with pytest.raises(DescgenError, match='3 predictions but 2 reference groups'):
        M.score(['a', 'b', 'c'], [['a'], ['b']])
    with pytest.raises(DescgenError, match='reference group 1'):
        M.score(['a', 'b'], [['a'], []])


def _e2e_files(tmp_path, outputs):
    (tmp_path / 'refs.csv').write_text('mr,ref\n"name[A], eatType[pub]",A is a pub.\n"name[A], eatType[pub]",The pub A.\n'
                                       '"name[B], food[French]",B serves French food.\n', encoding='utf-8')
    (tmp_path / 'out.tsv').write_text('MR\toutput\n' + ''.join(f'{m}\t{o}\n' for m, o in outputs), encoding='utf-8')
    return tmp_path / 'out.tsv', tmp_path / 'refs.csv'


def test_e2e_files_count_mismatch(tmp_path):
    p, r = _e2e_files(tmp_path, [('name[A], eatType[pub]', 'A is a pub.')])
    with pytest.raises(DescgenError, match=r'has 1 predictions but .* has 2 distinct MRs'):
        M.load_pairs(p, r, 'e2e')


def test_e2e_single_quoted_fields_are_unquoted_and_counted(tmp_path):
    p, r = _e2e_files(tmp_path, [("'name[A], eatType[pub]'", "'A is a pub.'"), ('name[B], food[French]', 'B is French.')])
    d = M.load_pairs(p, r, 'e2e')
    assert d['predictions'][0] == 'A is a pub.' and d['input_fixes'] == {'single_quotes_removed': 2}


def test_number_and_unit_matcher():
    w = [('weight', '400 g'), ('battery_life', '1,200 hours')]
    ws = {'weight': ['120 g', '400 g', '1.2 kg'], 'battery_life': ['10 hours', '1,200 hours']}
    assert M.attribute_score(w, 'It weighs 400g and lasts 1200 hours.', ws)['score'] == 1.0
    s = M.attribute_score(w, 'It weighs 250 g, lasts 1200 hours, 1.2 kg boxed.', ws)
    assert [h['span'] for h in s['hallucinated']] == ['250 g', '1.2 kg'] and s['missing'] == [['weight', '400 g']]


def test_e2e_files_inputs_that_do_not_match(tmp_path):
    p, r = _e2e_files(tmp_path, [('name[A], eatType[pub]', 'A is a pub.'), ('name[C]', 'C.')])
    with pytest.raises(DescgenError, match=r"line 3: field 'MR'"):
        M.load_pairs(p, r, 'e2e')


def test_e2e_files_empty_prediction_is_scored_and_counted(tmp_path, capsys):
    p, r = _e2e_files(tmp_path, [('name[A], eatType[pub]', 'A is a pub.'), ('name[B], food[French]', '')])
    assert M.evaluate_cli(['--predictions', str(p), '--references', str(r), '--format', 'e2e', '--json']) == 0
    out = json.loads(capsys.readouterr().out)
    assert out['n_empty'] == 1 and out['attr_coverage'] == 0.5


def test_text_and_jsonl_formats(tmp_path):
    (tmp_path / 'p.txt').write_text('a b c\nx y\n', encoding='utf-8')
    (tmp_path / 'r.txt').write_text('a b c\na b d\n\nx y z\n', encoding='utf-8')
    d = M.load_pairs(tmp_path / 'p.txt', tmp_path / 'r.txt', 'text')
    assert d['references'] == [['a b c', 'a b d'], ['x y z']]
    (tmp_path / 'r1.txt').write_text('only one\n', encoding='utf-8')
    with pytest.raises(DescgenError, match='2 predictions but .* 1 reference groups'):
        M.load_pairs(tmp_path / 'p.txt', tmp_path / 'r1.txt', 'text')
    refs = [{'id': 'p1', 'attributes': [['colour', 'red']], 'references': ['A red shirt.']},
            {'id': 'p2', 'attributes': [['colour', 'blue']], 'references': ['A blue shirt.']}]
    (tmp_path / 'test.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in refs), encoding='utf-8')
    (tmp_path / 'pred.jsonl').write_text(json.dumps({'id': 'p2', 'prediction': 'A blue shirt.'}) + '\n'
                                         + json.dumps({'id': 'p1', 'prediction': 'A red shirt.'}) + '\n', encoding='utf-8')
    d = M.load_pairs(tmp_path / 'pred.jsonl', tmp_path / 'test.jsonl')
    assert d['references'] == [['A blue shirt.'], ['A red shirt.']] and d['attributes'][0] == [('colour', 'blue')]
    (tmp_path / 'bad.jsonl').write_text(json.dumps({'id': 'p9', 'prediction': 'x'}) + '\n' + json.dumps({'id': 'p1', 'prediction': 'y'}) + '\n')
    with pytest.raises(DescgenError, match=r"line 1: field 'id'"):
        M.load_pairs(tmp_path / 'bad.jsonl', tmp_path / 'test.jsonl')


def _evaluate(capsys, *args):
    "(exit status, stdout, stderr) of `descgen evaluate` through the dispatcher."
    from descgen.cli import main
    capsys.readouterr()
    rc = main(['evaluate', *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err



def test_evaluate_prints_a_table_by_default_and_json_with_the_flag(tmp_path, capsys):
    "Issue #16: a readable table (examples and language on top, metrics by group); --json: one JSON object, same values."
    refs = tmp_path/'test.jsonl'
    refs.write_text(''.join(json.dumps({'id': f'p{i}', 'attributes': [['colour', c]], 'references': [f'A {c} mug.']}) + '\n'
                            for i, c in enumerate(['red', 'blue', 'green'])), encoding='utf-8')
    preds = tmp_path/'preds.jsonl'
    preds.write_text(''.join(json.dumps({'id': f'p{i}', 'prediction': p}) + '\n'
                             for i, p in enumerate(['A red mug.', 'A blue cup.', 'A mug.'])), encoding='utf-8')
    rc, table, err = _evaluate(capsys, '--predictions', preds, '--references', refs)
    assert rc == 0 and not table.lstrip().startswith('{')
    lines = table.splitlines()
    assert [l.split()[0] for l in lines[:3]] == ['examples', 'language', 'matched']
    assert lines[0].split()[1:] == ['3', '(0', 'empty)'] and lines[1].split()[-1] == 'en' and lines[2].endswith('by id')
    groups = [l for l in lines if l and not l.startswith(' ')][3:]
    assert groups == ['overlap with the references', 'faithfulness to the attributes', 'diversity and length']
    rc, out, _ = _evaluate(capsys, '--predictions', preds, '--references', refs, '--json')
    res = json.loads(out)
    value = lambda label: next(l for l in lines if l.startswith('  ' + label + ' ')).split()[-1]
    assert value('BLEU') == f"{res['bleu']:.2f}" and value('attribute coverage') == f"{res['attr_coverage']:.4f}"
    assert value('ROUGE-L') == f"{res['rouge_l']:.2f}" and value('average length (words)') == f"{res['avg_len']:.1f}"
    meteor = next(l for l in lines if l.startswith('  METEOR '))
    assert ('unavailable (' in meteor) if res['meteor'] is None else meteor.endswith(f"{res['meteor']:.2f}")

def test_evaluate_jsonl_ids_duplicated_unknown_missing_or_positional(tmp_path, capsys):
    "Issue #15, item 4: misaligned predictions are never scored; matching by position is said out loud."
    refs = tmp_path/'test.jsonl'
    refs.write_text(''.join(json.dumps({'id': f'p{i}', 'attributes': [['colour', c]], 'references': [f'A {c} mug.']}) + '\n'
                            for i, c in enumerate(['red', 'blue', 'green'])), encoding='utf-8')
    def preds(name, rows):
        f = tmp_path/name
        f.write_text(''.join(json.dumps(r) + '\n' for r in rows), encoding='utf-8')
        return f
    good = preds('good.jsonl', [{'id': f'p{i}', 'prediction': f'A {c} mug.'} for i, c in [(2, 'green'), (0, 'red'), (1, 'blue')]])
    rc, out, err = _evaluate(capsys, '--predictions', good, '--references', refs, '--json')
    res = json.loads(out)
    assert rc == 0 and res['matched'] == 'by id' and res['bleu'] == 100 and 'by position' not in err
    # as many predictions as inputs, one id twice: was BLEU 100 with p2 never scored
    dup = preds('dup.jsonl', [{'id': 'p0', 'prediction': 'A red mug.'}, {'id': 'p1', 'prediction': 'A blue mug.'},
                              {'id': 'p1', 'prediction': 'A blue mug.'}])
    for f, msg in [(dup, r"dup\.jsonl, line 3: field 'id': 'p1' is duplicated \(also at line 2\)"),
                   (preds('unknown.jsonl', [{'id': 'p0', 'prediction': 'x'}, {'id': 'p1', 'prediction': 'y'},
                                            {'id': 'p9', 'prediction': 'z'}]), r"unknown\.jsonl, line 3: field 'id': 'p9' is not an input"),
                   (preds('missing.jsonl', [{'id': 'p0', 'prediction': 'x'}, {'id': 'p1', 'prediction': 'y'}]),
                    r"test\.jsonl, line 3: input 'p2' has no prediction in .*missing\.jsonl"),
                   (preds('mixed.jsonl', [{'id': 'p0', 'prediction': 'x'}, {'prediction': 'y'}, {'id': 'p2', 'prediction': 'z'}]),
                    r"mixed\.jsonl, line 2: no 'id', while other predictions have one")]:
        rc, out, err = _evaluate(capsys, '--predictions', f, '--references', refs)
        assert rc == 2 and out == '' and re.search(msg, err) and 'Traceback' not in err, err
        with pytest.raises(DescgenError, match=msg): M.load_pairs(f, refs)
    # no ids at all: by position, said on stderr and in the JSON
    pos = preds('pos.jsonl', [{'prediction': 'A red mug.'}, {'prediction': 'A blue mug.'}, {'prediction': 'A green mug.'}])
    rc, out, err = _evaluate(capsys, '--predictions', pos, '--references', refs, '--json')
    assert rc == 0 and json.loads(out)['matched'] == 'by position' and 'matched 3 predictions to the references by position' in err
    assert M.load_pairs(pos, refs)['matched'] == 'by position'
    rc, out, err = _evaluate(capsys, '--predictions', preds('short.jsonl', [{'prediction': 'x'}]), '--references', refs)
    assert rc == 2 and 'has 1 predictions (without ids) but' in err


def test_evaluate_empty_files_bad_bytes_and_folder_output_are_messages(tmp_path, capsys):
    "Issue #15, item 8: empty text files, a --per-example path that is a folder, bytes that are not UTF-8."
    (tmp_path/'p.txt').write_text('a b c\n', encoding='utf-8')
    (tmp_path/'r.txt').write_text('a b c\n', encoding='utf-8')
    (tmp_path/'empty.txt').write_text('', encoding='utf-8')
    (tmp_path/'empty.jsonl').write_text('', encoding='utf-8')
    (tmp_path/'latin.txt').write_bytes('caf\xe9 cr\xe8me\n'.encode('latin-1'))
    (tmp_path/'folder').mkdir()
    refs = tmp_path/'test.jsonl'
    refs.write_text(json.dumps({'id': 'p0', 'references': ['a b c']}) + '\n', encoding='utf-8')
    for args, msg in [(['empty.txt', 'r.txt'], r'empty\.txt: no lines \(the file is empty\)'),
                      (['p.txt', 'empty.txt'], r'empty\.txt: no references \(the file is empty\)'),
                      (['empty.jsonl', 'test.jsonl'], r'empty\.jsonl: no records \(the file is empty\)'),
                      (['p.txt', 'empty.jsonl'], r'empty\.jsonl: no records'),
                      (['latin.txt', 'r.txt'], r'latin\.txt, line 1, column 4: not valid utf-8 \(byte 0xe9\)'),
                      (['p.txt', 'r.txt', '--per-example', 'folder'], r'--per-example .*folder: is a folder'),
                      (['p.txt', 'r.txt', '--per-example', 'p.txt/rows.jsonl'], r'p\.txt is a file, not a folder')]:
        a = [str(tmp_path/x) if i < 2 or x in ('folder', 'p.txt/rows.jsonl') else x for i, x in enumerate(args)]
        rc, out, err = _evaluate(capsys, '--predictions', a[0], '--references', a[1], *a[2:])
        assert rc == 2 and re.search(msg, err) and 'Traceback' not in err and out == '', (args, err)
    rc, out, err = _evaluate(capsys, '--predictions', tmp_path/'p.txt', '--references', tmp_path/'r.txt',
                             '--per-example', tmp_path/'new'/'rows.jsonl', '--json')
    assert rc == 0 and json.loads(out)['matched'] == 'by position' and (tmp_path/'new'/'rows.jsonl').exists()


def test_cli_reports_user_errors_with_exit_2(tmp_path):
    p, r = _e2e_files(tmp_path, [('name[A], eatType[pub]', 'A is a pub.')])
    res = subprocess.run([DESCGEN, 'evaluate', '--predictions', str(p), '--references', str(r)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and 'has 1 predictions but' in res.stderr


# ---- evaluate modules, loaded by path ----

def test_evaluate_modules_load_by_path_and_agree(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    preds, refs = ['the cat sat on the mat', 'a dog'], [['the cat sat on a mat', 'a cat sat'], ['a dog barks']]
    for name in M.METRIC_MODULES:
        assert (M.write_metric_module(name, tmp_path) / f'{name}.py').is_file()
    got = M.load_metric('e2e_mteval', tmp_path).compute(predictions=preds, references=refs)
    assert got['bleu'] == pytest.approx(M.e2e_bleu_nist(preds, refs)['bleu'])
    got = M.load_metric('coco_caption', tmp_path).compute(predictions=preds, references=refs)
    assert got['cider'] == pytest.approx(M.cider_d(preds, refs)['cider'])
    got = M.load_metric('attribute_faithfulness', tmp_path).compute(
        predictions=['Blue Spice serves Chinese food.'], references=[[list(x) for x in MR]])
    assert got['hallucination_rate'] == 1.0
    assert M.load_metric('text_diversity', tmp_path).compute(predictions=['a b', 'a c'])['distinct_1'] == 0.75


# ---- validation against the published E2E challenge scores ----

def test_tgen_bleu_nist_match_published(data_dir):
    d = M.load_pairs(data_dir / 'e2e/challenge_outputs/tgen.tsv', data_dir / 'e2e/testset_w_refs.csv', 'e2e')
    assert len(d['predictions']) == 630 and sum(map(len, d['references'])) == 4693
    r = M.e2e_bleu_nist(d['predictions'], d['references'])
    assert abs(r['bleu'] - 65.93) <= 0.05, r['bleu']
    assert abs(r['nist'] - 8.6094) <= 0.02, r['nist']
    assert abs(M.rouge_l(d['predictions'], d['references'])['rouge_l'] - 68.50) <= 0.1
    assert abs(M.cider_d(d['predictions'], d['references'])['cider'] - 2.2338) <= 0.01


def test_cli_on_tgen_prints_published_bleu(data_dir):
    res = subprocess.run([DESCGEN, 'evaluate',
                          '--predictions', str(data_dir / 'e2e/challenge_outputs/tgen.tsv'),
                          '--references', str(data_dir / 'e2e/testset_w_refs.csv'), '--format', 'e2e', '--json'],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert abs(out['bleu'] - 65.93) <= 0.05 and abs(out['nist'] - 8.6094) <= 0.02
    assert out['n'] == 630 and out['n_empty'] == 0 and 0.9 < out['attr_coverage'] <= 1.0


def test_challenge_report_writer(tmp_path):
    row = {'bleu': 65.93, 'nist': 8.61, 'meteor': None, 'meteor_exact_stem': 42.0, 'rouge_l': 68.5, 'cider': 2.23, 'chrf': 70.9,
           'attr_coverage': 0.967, 'hallucination_rate': 0.044, 'hallucinations_per_output': 0.044, 'distinct_2': 0.024,
           'avg_len': 26.5, 'n_empty': 0, 'meteor_reason': 'nltk WordNet data not found'}
    M.write_e2e_challenge_report({'systems': {'tgen': row, 'other': dict(row, bleu=60.0)}}, tmp_path)
    res = json.loads((tmp_path / 'e2e_challenge.json').read_text())
    assert res['tgen_vs_published']['bleu']['diff'] == pytest.approx(0.0)
    assert res['tgen_vs_published']['meteor']['ours'] is None  # unavailable, never 0
    md = (tmp_path / 'e2e_challenge.md').read_text()
    assert '| tgen | 65.93 | 8.6100 | unavailable | 42.00 |' in md and '| other | 60.00 |' in md


def test_shipped_evaluate_modules_match_the_template():
    "descgen/evaluate_modules/* are generated: they must equal what the notebook's template writes."
    import descgen.metrics as M
    for n in M.METRIC_MODULES:
        f = M.shipped_modules_dir()/n/f'{n}.py'
        assert f.exists(), f'{f} missing: run `make export`'
        assert f.read_text(encoding='utf-8') == M._module_source(n), f'{f} drifted from the template: run `make export`'
        assert M.metric_module_path(n) == f.parent
