"""Correctness of the benchmark machinery (no timing is asserted: speed is measured by `descgen bench`, not tested)."""
import json
from pathlib import Path

import pytest

from descgen.bench import (attention_flops_per_token, bench_cli, command_line, count_tokens, CountingCollator,
                           gpt2_param_formula, measure_training, pad_to_fixed, reset_peak_rss, rss_mb,
                           roofline_fraction, train_flops_per_token, write_benchmark, lora_worker, _fmt)
from descgen.core import markdown_table


@pytest.fixture(scope='module')
def tok():
    from descgen.models import train_tokenizer
    return train_tokenizer(['a red cotton shirt for men', 'blue denim jeans with five pockets', 'a soft wool scarf'] * 20,
                           vocab_size=300)


def test_benchmark_tables_format_numbers(tmp_path):
    md = markdown_table([{'a': 1234567, 'b': 0.123456, 'c': 12345.6, 'd': None, 'e': 'x'}], align='l', fmt=_fmt)
    lines = md.splitlines()
    assert lines[0] == '| a | b | c | d | e |'
    assert lines[2] == '| 1,234,567 | 0.123 | 12,346 |  | x |'
    write_benchmark('empty', [], title='T', out_dir=tmp_path)
    assert '_no rows_' in (tmp_path/'empty.md').read_text()
    write_benchmark('one', [{'a': 1, 'b': 2}], title='T', out_dir=tmp_path, cols=['b'])
    assert '| b |\n|---|\n| 2 |' in (tmp_path/'one.md').read_text()


def test_write_benchmark_json_and_markdown(tmp_path):
    goals = [{'goal': 'speed-up', 'target': '>= 3x', 'measured': 3.5, 'met': True}]
    p = write_benchmark('x', [{'recipe': 'kit', 'tok_s': 1500.0}], title='T', note='a note', command='descgen bench x',
                        extra={'goals': goals, 'gemm_reference_gflops': 60.0}, out_dir=tmp_path)
    rec = json.loads(Path(p).read_text())
    assert rec['name'] == 'x' and rec['command'] == 'descgen bench x' and rec['rows'] == [{'recipe': 'kit', 'tok_s': 1500.0}]
    assert rec['gemm_reference_gflops'] == 60.0 and rec['goals'] == goals
    assert {'load_1m', 'load_5m', 'load_15m', 'cpu_count'} <= set(rec['load_at_write'])
    assert {'python', 'libraries', 'git_commit'} <= set(rec['env'])
    md = (tmp_path/'x.md').read_text()
    assert md.startswith('# T\n\na note\n') and '| kit | 1,500 |' in md
    assert '| speed-up | >= 3x | 3.5 | yes |' in md and 'Reproduce: `descgen bench x`' in md and 'load average' in md


def test_command_line():
    assert command_line('train') == 'descgen bench train'
    assert command_line('lora', quick=True, out_dir='out dir') == "descgen bench lora --quick --out 'out dir'"


def test_flop_accounting():
    assert train_flops_per_token(5_000_000) == 30_000_000
    assert roofline_fraction(1000, 5_000_000, 60.0) == pytest.approx(0.5)
    assert attention_flops_per_token(4, 256, 128) == 6 * 4 * 256 * 128


@pytest.mark.parametrize('size,over', [('tiny', {}), ('small', dict(d_model=96, n_layer=3, n_head=4, d_ff=200))])
def test_param_formula_matches_count_parameters(size, over):
    "The N in 6N is the kit's count (tied embeddings once), which equals the closed-form GPT-2 count."
    from transformers import AutoModelForCausalLM
    from descgen.models import model_config, count_parameters, size_config
    h = size_config(size, **over)
    m = AutoModelForCausalLM.from_config(model_config('gpt2', size, vocab_size=500, **over))
    assert count_parameters(m) == gpt2_param_formula(500, h['n_positions'], h['d_model'], h['n_layer'], h['d_ff'])


def test_count_tokens_causal_and_seq2seq():
    import torch
    b = {'input_ids': torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]]), 'attention_mask': torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
         'labels': torch.tensor([[-100, 6, 7, -100], [-100, 6, -100, -100]])}
    assert count_tokens(b) == (5, 8)
    assert count_tokens({'input_ids': torch.ones(2, 3, dtype=torch.long)}) == (6, 6)   # packed rows: no mask, no padding
    s2s = {'input_ids': torch.tensor([[5, 6, 1], [5, 1, 0]]), 'attention_mask': torch.tensor([[1, 1, 1], [1, 1, 0]]),
           'labels': torch.tensor([[7, 8, 1, -100, -100], [7, 1, -100, -100, -100]])}
    assert count_tokens(s2s) == (5 + 5, 6 + 10)


def test_useful_tokens_of_kit_collator_and_seed_padding(tok):
    "Useful tokens are the rows' real lengths whatever the padding; the seed's rows compute 256 positions each."
    from transformers import default_data_collator
    from descgen.data import Product, tokenize_products, make_collator
    prods = [Product(id=str(i), attributes=[('colour', 'red'), ('type', 'shirt')], references=['a red shirt' + ' for men' * i])
             for i in range(5)]
    ds = tokenize_products(prods, tok, cache=False)
    lens = [len(x) for x in ds['input_ids']]
    assert len(set(lens)) == 5
    c = CountingCollator(make_collator(tok, 'causal'))
    c([ds[i] for i in range(5)])
    assert c.batches == [(sum(lens), 5 * max(lens))]
    fixed = pad_to_fixed(ds, 256, tok.pad_token_id)
    assert all(len(x) == 256 for x in fixed['input_ids'])
    b = default_data_collator([fixed[i] for i in range(5)])
    assert count_tokens(b) == (sum(lens), 5 * 256)
    assert int(b['labels'].ne(-100).sum()) == sum(int((ds[i]['labels'][j] != -100)) for i in range(5) for j in range(lens[i]))


def test_measure_training_counts_the_timed_batches(tok):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from descgen.data import make_collator
    from descgen.models import model_config
    ns = list(range(3, 15))
    ds = Dataset.from_dict({'input_ids': [[1] + [7]*n for n in ns], 'attention_mask': [[1]*(n+1) for n in ns],
                            'labels': [[-100] + [7]*n for n in ns]})
    m = AutoModelForCausalLM.from_config(model_config('gpt2', 'tiny', vocab_size=len(tok)))
    r, trainer = measure_training(m, ds, make_collator(tok, 'causal'), batch_size=4, steps=3, warmup=1, sampler='sequential')
    assert r['steps_timed'] == 2 and trainer.state.global_step == 3
    assert r['useful_tokens_per_step'] * 2 == sum(n + 1 for n in ns[4:])      # batches 2 and 3 (rows 4-11)
    assert r['computed_tokens_per_step'] * 2 == 4 * 11 + 4 * 15
    assert r['pad_fraction'] == pytest.approx(1 - sum(n + 1 for n in ns[4:]) / (4 * 11 + 4 * 15))
    assert r['useful_tokens_per_s'] > 0 and r['step_s_median'] > 0
    with pytest.raises(Exception): measure_training(m, ds, make_collator(tok, 'causal'), steps=2, warmup=2)


def test_lora_worker_optimizer_state_and_checkpoint():
    full = lora_worker({'shape': 'tiny', 'method': 'full', 'steps': 2, 'warmup': 1, 'batch_size': 2, 'seq_len': 8})
    lora = lora_worker({'shape': 'tiny', 'method': 'lora', 'steps': 2, 'warmup': 1, 'batch_size': 2, 'seq_len': 8})
    for r in (full, lora):   # AdamW: two fp32 moments per trained parameter (+ a scalar step per tensor)
        assert 8 * r['trainable_params'] <= r['optimizer_state_mb'] * 2**20 <= 8 * r['trainable_params'] + 8 * 1000
    assert full['trainable_params'] == full['total_params']
    assert lora['trainable_params'] < 0.05 * lora['total_params'] and lora['target_modules'] == ['c_attn']
    assert lora['checkpoint_mb'] < 0.1 * full['checkpoint_mb']
    assert full['checkpoint_mb'] * 2**20 >= 4 * full['total_params']   # fp32 safetensors of every weight


def test_rss_helpers():
    if rss_mb() is None: pytest.skip('no /proc/self/status on this platform')
    assert rss_mb() > 0
    if reset_peak_rss(): assert rss_mb('VmHWM') >= rss_mb() * 0.9


def test_cli_gemm_quick_writes_results(tmp_path, capsys):
    assert bench_cli(['gemm', '--quick', '--out', str(tmp_path)]) == 0
    rec = json.loads((tmp_path/'gemm.json').read_text())
    assert [r['n'] for r in rec['rows']][:2] == [256, 512] and all(r['gflops_median'] > 0 for r in rec['rows'])
    assert all(r['n'] == 512 and r['threads'] == 1 for r in rec['rows'][2:])   # the one-thread row (when torch uses more)
    assert rec['command'] == f'descgen bench gemm --quick --out {tmp_path}'
    assert 'fp32 matrix multiply' in capsys.readouterr().out


def test_cli_threads(tmp_path, capsys):
    import torch
    from descgen import bench
    from descgen.core import DescgenError
    import os
    n0, omp = torch.get_num_threads(), os.environ.get('OMP_NUM_THREADS')
    try:
        assert bench_cli(['gemm', '--quick', '--threads', '1', '--out', str(tmp_path)]) == 0
        rec = json.loads((tmp_path/'gemm.json').read_text())
        assert rec['torch_threads'] == 1 and rec['command'].endswith('--threads 1')
        assert all(r['threads'] == 1 for r in rec['rows']) and len(rec['rows']) == 2
        with pytest.raises(DescgenError): bench_cli(['gemm', '--threads', '0'])
    finally:
        bench.set_bench_threads(None)
        torch.set_num_threads(n0)
        if omp is None: os.environ.pop('OMP_NUM_THREADS', None)
        else: os.environ['OMP_NUM_THREADS'] = omp


def test_cli_rejects_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as e: bench_cli(['nope'])
    assert e.value.code == 2 and 'invalid choice' in capsys.readouterr().err


def test_cli_decode_quick_writes_rows_and_goals(tmp_path, capsys):
    "The SmolLM2 decoding benchmark's quick mode (a tiny random Llama): every row, the goals, equal outputs."
    assert bench_cli(['decode', '--quick', '--out', str(tmp_path)]) == 0
    rec = json.loads((tmp_path/'decode.json').read_text())
    assert [r['what'].split(',')[0] for r in rec['rows']] == \
        ['greedy'] * 3 + ['beam 4'] * 2 + ['synthetic test set (8)'] + ['few-shot (2 examples)'] * 2
    assert all(r['new_tokens'] > 0 and r['wall_s'] > 0 for r in rec['rows'])
    assert [r['vs'] for r in rec['rows'] if 'vs' in r] == ['greedy, one at a time'] * 2 + ['beam 4, one at a time'] + \
        ['greedy, one at a time', 'few-shot (2 examples), prefix in every row']
    assert [r['same_tokens'] for r in rec['rows'] if 'same_tokens' in r] == [1.0] * 4   # batched == one at a time etc.
    assert len(rec['goals']) == 5 and rec['command'] == f'descgen bench decode --quick --out {tmp_path}'
    assert '| few-shot (2 examples), shared prefix once |' in (tmp_path/'decode.md').read_text()
    assert '| [decode](decode.md) |' in (tmp_path/'README.md').read_text()


def test_cli_levers_quick_writes_rows_and_goals(tmp_path, capsys):
    "The fine-tuning levers benchmark's quick mode (a tiny random GPT-2): both rows, FLOPs counted, the goals."
    assert bench_cli(['levers', '--quick', '--out', str(tmp_path)]) == 0
    rec = json.loads((tmp_path/'levers.json').read_text())
    assert [r['lever'] for r in rec['rows']] == ['Trainer defaults', 'kit recipe']
    assert all(r['flops_per_position'] > 0 and r['executed_gflops'] > 0 for r in rec['rows'])
    assert rec['rows'][0]['pad_fraction'] > rec['rows'][1]['pad_fraction']
    assert len(rec['goals']) == 3 and rec['command'] == f'descgen bench levers --quick --out {tmp_path}'
