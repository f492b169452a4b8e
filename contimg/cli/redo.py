"""`contimg redo`: do a step again for named observations (a lost MS, new settings)."""

from __future__ import annotations

import click

from contimg.cli.common import App, emit_json, exit_for, fail_usage, items_from, json_option, pass_app
from contimg.state.redo import redo
from contimg.steps.registry import BY_NAME

OBSERVATION_STEPS = ("convert", "calibrate", "image")


@click.command("redo")
@click.argument("step", type=click.Choice(OBSERVATION_STEPS))
@click.argument("observations", nargs=-1)
@click.option("--run", "run_now", is_flag=True, help="Run the step now, here (else watch or "
              "'contimg STEP' takes it).")
@json_option
@pass_app
def command(app: App, step: str, observations: tuple[str, ...], run_now: bool) -> None:
    """Reset STEP of the given observations to pending (IDs as arguments or on stdin).

    The later steps of the same observation (calibrate and image after convert) are
    queued again when the redone step completes.  Rebuilds a deleted or pruned MS with
    `contimg redo convert OBS`.  Mosaics already made are not remade.
    """
    subjects = items_from(observations)
    if not subjects:
        fail_usage("give observation IDs (arguments or stdin); see 'contimg list observations'")
    downstream = OBSERVATION_STEPS[OBSERVATION_STEPS.index(step) + 1:]
    db = app.db()
    results, failures = [], 0
    for subject in subjects:
        what, job = redo(db, step, subject, downstream=downstream)
        if what == "reset":
            msg = "reset to pending" + (f" ({', '.join(downstream)} follow)" if downstream else "")
        elif what == "running":
            msg = f"{job.step} is running in {job.lease_owner}; not reset (wait for it)"
            failures += 1
        else:
            msg = f"no {step} job for {subject}; see 'contimg list jobs --step {step}'"
            failures += 1
        results.append({"subject": subject, "step": step, "status": what, "message": msg})
    if run_now:
        reset = [r["subject"] for r in results if r["status"] == "reset"]
        if reset:
            from contimg.cli.stepcmd import run_and_render

            spec = BY_NAME[step]
            run_and_render(app, step, spec.do_one(), reset, None, casa=spec.uses_casa)
        exit_for(failures)
        return
    if app.json_output:
        emit_json(results)
    else:
        for r in results:
            click.echo(f"{r['subject']}\t{r['step']}\t{r['message']}")
        if any(r["status"] == "reset" for r in results):
            click.echo(f"run 'contimg {step} ID...' now, or let 'contimg watch' take them",
                       err=True)
    exit_for(failures)
