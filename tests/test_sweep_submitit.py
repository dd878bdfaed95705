"""The SLURM path of the sweep (`--executor slurm`) run through submitit's LOCAL executor (`--executor submitit-local`):
real submitit jobs (controller subprocess, pickled call, log files), no sbatch. One ok run, one failing run, a restart;
--no-wait then `descgen report`; the config's/flags' SLURM parameters."""
import json, shutil, time
from pathlib import Path
from descgen.cli import main
from descgen.sweep import expand_runs, load_config, slurm_parameters, RESULTS, FAILURE, RUNREC, JOBREC

FIX = Path(__file__).parent/'fixtures'/'sweep_nb.ipynb'

def write_cfg(tmp_path, runs, name='cfg.yaml', **extra):
    import yaml
    p = tmp_path/name
    p.write_text(yaml.safe_dump({'name': 'tiny', 'notebook': str(FIX), 'runs': runs, 'seeds': [0], **extra}))
    return p

def ids_by_x(cfg): return {r['params']['x']: r['id'] for r in expand_runs(load_config(cfg))}

def test_submitit_local_ok_failing_and_restart(tmp_path, capsys):
    cfg = write_cfg(tmp_path, [{'x': 1}, {'x': 2, 'fail': True, 'label': 'broken'}],
                    slurm={'partition': 'ignored-here', 'timeout_min': 5, 'cpus_per_task': 1})
    out = tmp_path/'out'
    args = ['sweep', str(cfg), '--out', str(out), '--executor', 'submitit-local', '--no-progress']
    assert main(args) == 1                                   # one run failed
    ids = ids_by_x(cfg)
    ok, bad = out/'runs'/ids[1], out/'runs'/ids[2]
    res = json.loads((ok/RESULTS).read_text())
    assert res['metrics']['score'] == 10.0 and json.loads((ok/RUNREC).read_text())['status'] == 'ok'
    fail = json.loads((bad/FAILURE).read_text())
    assert fail['error'] == 'ValueError' and 'deliberate failure for x=2' in fail['message']
    assert not (bad/RESULTS).exists() and 'An Exception was encountered' in (bad/'notebook.ipynb').read_text()
    for rd in (ok, bad):  # each run was a submitit job with its own logs under OUT/slurm
        job = json.loads((rd/JOBREC).read_text())
        assert job['executor'] == 'submitit-local' and Path(job['stdout']).parent == out/'slurm'
        assert Path(job['stdout']).exists() and Path(job['stderr']).exists()
    summ = json.loads((out/'summary.json').read_text())
    assert (summ['done'], summ['failed'], summ['executed']) == (1, 1, 2)
    assert json.loads((out/'sweep.json').read_text())['executor'] == 'submitit-local'
    o = capsys.readouterr()
    assert 'FAILED' in o.out and 'broken seed=0' in o.out and '2 job(s) submitted' in o.out
    assert (out/'report.html').exists() and (out/'report.md').exists()
    assert 'broken' in (out/'report.md').read_text()          # the failed run is named in the report
    # started again: the finished run is skipped, the failed one resubmitted (and fails again)
    written, started = res['written'], fail['started']
    assert main(args) == 1
    assert json.loads((ok/RESULTS).read_text())['written'] == written
    assert json.loads((bad/FAILURE).read_text())['started'] > started
    assert json.loads((out/'summary.json').read_text())['executed'] == 1
    assert '1 job(s) submitted' in capsys.readouterr().out

def test_no_wait_then_report(tmp_path, capsys):
    cfg = write_cfg(tmp_path, [{'x': 3, 'sleep': 4.0}])
    out = tmp_path/'out'
    args = ['sweep', str(cfg), '--out', str(out), '--executor', 'submitit-local', '--no-wait', '--no-progress']
    t0 = time.time()
    assert main(args) == 0
    assert time.time() - t0 < 10                              # returned without waiting for the 4 s run
    o = capsys.readouterr().out
    assert '1 job(s) submitted' in o and f'descgen report {out}' in o
    # called again while the job still runs: refused, nothing submitted twice
    assert main(args) == 2
    assert 'still have a job queued or running' in capsys.readouterr().err
    rd = out/'runs'/ids_by_x(cfg)[3]
    while not (rd/RESULTS).exists() and time.time() - t0 < 90: time.sleep(0.2)
    assert (rd/RESULTS).exists()
    time.sleep(1)                                             # the job's controller exits after the run
    assert main(['report', str(out)]) == 0
    assert (out/'report.html').exists()

def test_slurm_parameters_from_config_and_flags(tmp_path, capsys):
    cfg = write_cfg(tmp_path, [{'x': 1}], slurm={'partition': 'gpu', 'mem_gb': 32, 'array_parallelism': 4})
    p = slurm_parameters(load_config(cfg), mem_gb=64, gpus_per_node=1, partition=None)
    assert p == {'name': 'descgen-tiny', 'timeout_min': 120, 'slurm_partition': 'gpu', 'mem_gb': 64,
                 'slurm_array_parallelism': 4, 'gpus_per_node': 1}
    out = tmp_path/'out'
    assert main(['sweep', str(cfg), '--out', str(out), '--executor', 'slurm', '--mem-gb', '8', '--dry-run']) == 0
    o = capsys.readouterr().out
    assert '"mem_gb":8' in o.replace(' ', '') and '"slurm_partition":"gpu"' in o.replace(' ', '')
    bad = write_cfg(tmp_path, [{'x': 1}], name='bad.yaml', slurm={'partiton': 'gpu'})
    assert main(['sweep', str(bad), '--out', str(out), '--executor', 'slurm']) == 2
    assert "unknown slurm key(s) ['partiton']" in capsys.readouterr().err
    if shutil.which('srun') is None:                          # this machine is no cluster: said, not a traceback
        assert main(['sweep', str(cfg), '--out', str(out), '--executor', 'slurm']) == 2
        assert 'no SLURM on this machine' in capsys.readouterr().err

def test_a_job_that_dies_is_a_failed_run(tmp_path):
    "A job killed under the run (time limit, memory, node): failure.json says JobError with submitit's message."
    import os, submitit
    from descgen.sweep import _job_record, run_status
    ex = submitit.AutoExecutor(folder=tmp_path/'slurm', cluster='local')
    ex.update_parameters(timeout_min=1)
    job = ex.submit(os._exit, 3)                              # the job's process dies without a result
    rd = tmp_path/'runs'/'r1'
    rd.mkdir(parents=True)
    (rd/RUNREC).write_text(json.dumps({'id': 'r1', 'status': 'running'}))   # as execute_run leaves it
    rec = _job_record(job, {'id': 'r1', 'label': 'l', 'params': {}}, rd)
    assert rec['status'] == 'failed' and rec['error'] == 'JobError' and rec['job_id'] == job.job_id
    assert run_status(rd) == 'failed' and json.loads((rd/FAILURE).read_text())['job_log'] == str(job.paths.stderr)
