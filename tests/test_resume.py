"""Resumption after a kill (issue #15, items 3 and 7): a checkpoint cut short by a kill (empty folder, no
trainer_state.json, truncated weights, or a real SIGKILL inside the Trainer's checkpoint write) is moved aside and the
run resumes from the last complete one, bit-identical to an uninterrupted run; nothing complete left: from scratch.
A resumed run reports its whole cost: the parts before and after the resume add up (a checkpoint from before the kit
recorded its cost: an unknown part, said so)."""
import json, subprocess, sys, textwrap
from pathlib import Path
import pytest

torch = pytest.importorskip('torch')
from descgen.core import read_jsonl, set_threads
set_threads(1)
from descgen.train import finetune
from descgen.checkpoints import last_complete_checkpoint, checkpoint_problem

# 192 training rows / 8 = 24 steps per epoch: 18 steps, a checkpoint every 6 (the pattern of test_train's SIGKILL test)
# threads=1 in every run: the reference runs inside pytest (whose thread count earlier tests may have changed), the
# killed run in a subprocess; float sums on 1 and 2 threads differ in the last bit.
OPTS = dict(max_steps=18, eval_steps=6, logging_steps=3, batch_size=8, lr=5e-3, dropout=0.1, max_source_len=48,
            max_target_len=32, max_eval_examples=8, progress=False, threads=1)
SAME = ['steps', 'train_loss', 'val_loss', 'val_token_loss', 'best_val_loss', 'best_checkpoint', 'val_loss_curve',
        'useful_tokens', 'trainable_params']


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, tiny_base):
    from descgen.data import prepare
    root = tmp_path_factory.mktemp('resume')
    data = prepare('synthetic', out=root/'data', n=240)
    base = tiny_base(root/'gpt2', data, 'gpt2')
    ref = finetune(data, base, 'full', out=root/'ref', **OPTS)   # the uninterrupted run
    return {'root': root, 'data': data, 'base': base, 'ref': ref}


def _metrics(run): return json.loads((Path(run)/'metrics.json').read_text())


def _weights(run):
    from safetensors.torch import load_file
    return load_file(str(Path(run)/'model'/'model.safetensors'))


def _same_as_ref(tiny, run, resumed_from):
    a, b = _metrics(tiny['ref']), _metrics(run)
    assert b['resumed_from'] == resumed_from
    for k in SAME: assert a[k] == b[k], (k, a[k], b[k])
    wa, wb = _weights(tiny['ref']), _weights(run)
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)   # bit-identical final model
    strip = lambda rows: [{k: v for k, v in r.items() if k in ('step', 'loss', 'eval_loss', 'grad_norm', 'learning_rate')}
                          for r in rows if 'train_runtime' not in r]
    assert strip(read_jsonl(tiny['ref']/'train_log.jsonl')) == strip(read_jsonl(run/'train_log.jsonl'))
    return a, b


def _stopped_at(tiny, out, step):
    "A run stopped (an exception from a callback) at the end of `step`: its checkpoints are those written before."
    from transformers import TrainerCallback
    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step: raise KeyboardInterrupt('stopped')
    with pytest.raises(KeyboardInterrupt): finetune(tiny['data'], tiny['base'], 'full', out=out, callbacks=[Stop()], **OPTS)
    return out/'checkpoints'


def _empty(ck):
    for p in ck.iterdir(): p.unlink()

def _no_state(ck): (ck/'trainer_state.json').unlink()

def _truncated_weights(ck):
    w = ck/'model.safetensors'
    w.write_bytes(w.read_bytes()[:w.stat().st_size // 3])


@pytest.mark.parametrize('damage', [_empty, _no_state, _truncated_weights])
def test_partial_checkpoint_is_moved_aside_and_the_run_resumes_from_the_last_complete(tiny, damage, tmp_path, capfd):
    run = tmp_path/'run'
    cks = _stopped_at(tiny, run, 13)
    assert sorted(p.name for p in cks.iterdir()) == ['checkpoint-12', 'checkpoint-6']
    damage(cks/'checkpoint-12')                        # as a kill while the Trainer wrote checkpoint-12 leaves it
    assert checkpoint_problem(cks/'checkpoint-12') is not None and checkpoint_problem(cks/'checkpoint-6') is None
    capfd.readouterr()
    finetune(tiny['data'], tiny['base'], 'full', out=run, **OPTS)
    err = capfd.readouterr().err
    assert 'checkpoint-12 is an incomplete checkpoint' in err and 'moved aside' in err
    aside = list((run/'partial_checkpoints').iterdir())
    assert [p.name.split('.partial-')[0] for p in aside] == ['checkpoint-12']
    a, b = _same_as_ref(tiny, run, 'checkpoint-6')
    # the cost: the part before the resume (from checkpoint-6's state) and the part after, added up
    assert [(p['from_step'], p['to_step']) for p in b['cost_parts']] == [(0, 6), (6, 18)]
    assert sum(p['useful_tokens'] for p in b['cost_parts']) == b['useful_tokens'] == a['useful_tokens']
    assert b['train_time_s'] >= sum(p['train_s'] for p in b['cost_parts']) - 0.01 and b['cost_complete']


def test_nothing_complete_left_starts_from_scratch(tiny, tmp_path, capfd):
    run = tmp_path/'run'
    cks = _stopped_at(tiny, run, 8)
    assert [p.name for p in cks.iterdir()] == ['checkpoint-6']
    (cks/'checkpoint-6'/'optimizer.pt').write_bytes(b'')
    capfd.readouterr()
    finetune(tiny['data'], tiny['base'], 'full', out=run, **OPTS)
    assert 'no complete checkpoint' in capfd.readouterr().err
    a, b = _same_as_ref(tiny, run, None)
    assert [(p['from_step'], p['to_step']) for p in b['cost_parts']] == [(0, 18)]



def test_checkpoint_without_recorded_cost_resumes_and_says_the_cost_is_partial(tiny, tmp_path):
    "A checkpoint written before the kit recorded the cost (no CostLog state): resumed the same; its part is unknown."
    run = tmp_path/'run'
    cks = _stopped_at(tiny, run, 13)
    for ck in cks.iterdir():
        st = json.loads((ck/'trainer_state.json').read_text())
        del st['stateful_callbacks']['CostLog']
        (ck/'trainer_state.json').write_text(json.dumps(st))
    finetune(tiny['data'], tiny['base'], 'full', out=run, **OPTS)
    b = _metrics(run)
    assert b['resumed_from'] == 'checkpoint-12' and b['val_loss_curve'] == _metrics(tiny['ref'])['val_loss_curve']
    assert b['cost_parts'][0] == {'from_step': 0, 'to_step': 12, 'train_s': None, 'useful_tokens': None}
    assert (b['cost_parts'][1]['from_step'], b['cost_parts'][1]['to_step']) == (12, 18)
    assert b['cost_complete'] is False and b['useful_tokens'] == b['cost_parts'][1]['useful_tokens'] > 0

KILL_IN_SAVE = textwrap.dedent('''
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from transformers import Trainer
    from descgen.train import finetune
    kill_at = int(sys.argv[3])
    save = Trainer._save_optimizer_and_scheduler
    def dying_save(self, output_dir):   # SIGKILL in the middle of the Trainer's checkpoint write (weights written)
        if self.state.global_step == kill_at: os.kill(os.getpid(), signal.SIGKILL)
        return save(self, output_dir)
    Trainer._save_optimizer_and_scheduler = dying_save
    finetune(sys.argv[1], sys.argv[2], 'full', out=sys.argv[4], **{OPTS})
''')


def test_sigkill_during_a_checkpoint_write_then_resume(tiny, tmp_path):
    script = tmp_path/'run.py'
    script.write_text(KILL_IN_SAVE.replace('{OPTS}', repr(OPTS)))
    run = tmp_path/'killed'
    args = [sys.executable, str(script), str(tiny['data']), str(tiny['base'])]
    r = subprocess.run(args + ['12', str(run)], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]          # really killed by SIGKILL
    ck = run/'checkpoints'/'checkpoint-12'
    assert (ck/'model.safetensors').exists() and not (ck/'trainer_state.json').exists()   # a partial checkpoint
    assert checkpoint_problem(ck) == 'trainer_state.json missing'
    assert last_complete_checkpoint(run/'checkpoints', move_aside=False).name == 'checkpoint-6'
    part1 = json.loads((run/'checkpoints'/'checkpoint-6'/'trainer_state.json').read_text())
    part1 = part1['stateful_callbacks']['CostLog']['attributes']['parts']
    r = subprocess.run(args + ['0', str(run)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'checkpoint-12 is an incomplete checkpoint (trainer_state.json missing)' in r.stderr
    a, b = _same_as_ref(tiny, run, 'checkpoint-6')
    assert b['cost_parts'][:1] == part1 and part1[0]['train_s'] > 0
    assert b['useful_tokens'] == a['useful_tokens'] == sum(p['useful_tokens'] for p in b['cost_parts'])
    assert b['train_time_s'] >= part1[0]['train_s'] + b['cost_parts'][1]['train_s'] - 0.01
    assert b['tokens_per_s'] == round(b['useful_tokens'] / sum(p['train_s'] for p in b['cost_parts']), 1)


def test_resumed_experiment_reports_the_whole_cost(tmp_path, monkeypatch):
    """Through the sweep's experiment body: a training killed in a checkpoint write, resumed; results.json and the
    report's cost columns show the whole run, and its useful tokens equal an uninterrupted run's."""
    from transformers import Trainer
    from descgen.report import results_frame
    from descgen.sweep import run_experiment
    kw = dict(dataset='synthetic', data_options={'n': 240}, base_model='kit:tiny', base_options={'max_steps': 4},
              method='full', max_steps=6, batch_size=4, lr=3e-3, threads=1, max_eval=2, max_new_tokens=4,
              method_options={'eval_steps': 3, 'early_stopping_patience': None})
    whole = run_experiment(**kw, out_dir=str(tmp_path/'whole'))
    save = Trainer._save_optimizer_and_scheduler
    def dying_save(self, output_dir):   # the process "dies" in the middle of writing checkpoint-6
        if self.state.global_step == 6: raise KeyboardInterrupt('killed')
        return save(self, output_dir)
    monkeypatch.setattr(Trainer, '_save_optimizer_and_scheduler', dying_save)
    with pytest.raises(KeyboardInterrupt): run_experiment(**kw, out_dir=str(tmp_path/'run'))
    monkeypatch.setattr(Trainer, '_save_optimizer_and_scheduler', save)
    assert checkpoint_problem(tmp_path/'run'/'train'/'checkpoints'/'checkpoint-6') == 'trainer_state.json missing'
    r = run_experiment(**kw, out_dir=str(tmp_path/'run'))
    rec = r['train_record']
    assert rec['resumed_from'] == 'checkpoint-3'
    assert [(p['from_step'], p['to_step']) for p in rec['cost_parts']] == [(0, 3), (3, 6)]
    assert rec['useful_tokens'] == whole['train_record']['useful_tokens']
    assert rec['useful_tokens'] == sum(p['useful_tokens'] for p in rec['cost_parts'])
    assert r['train_time_s'] == rec['train_time_s'] >= sum(p['train_s'] for p in rec['cost_parts']) - 0.01
    assert r['tokens_per_s'] == rec['tokens_per_s']
    df = results_frame([{**r, 'run_id': 'x', 'setting': 'full'}])
    assert df['train time (s)'].iloc[0] == r['train_time_s']
