"""The reference study: long CPU runs, evaluated along the way (DCI against training steps).

The quick profile's 100 steps demonstrate the pipeline; they cannot test the paper's claims.
The study trains a few configurations long enough to, and evaluates each at its profile's
``milestones`` so the book can show whether a gap between configurations is opening,
closing, or not there yet. It is built to run for days on a small machine, across sessions.
One module a job, in the order they build on each other:

    plans      which runs, in which order (:data:`STUDY`, :data:`DIAGNOSIS`), where each
               lives and what it is called
    measures   what a snapshot is measured by (:func:`z_share`, :func:`readout`) and the
               milestone records and pictures (:func:`milestone_eval`)
    shipping   a run copied into ``results/`` with its evidence (:func:`ship`), resumed
               from there (:func:`resume_from_shipped`) and checked (:func:`replay`)
    workers    the workers that train and evaluate the plans (:func:`work`,
               :func:`work_on`, :func:`train_only`) and where each run stands
               (:func:`progress`)
    frames     the Evidence page's tables of what is shipped

Every public name is here too (``from lvae.report.study import ship``). A test that
replaces one of them (``monkeypatch.setattr``) patches the module that looks it up
(``lvae.report.study.workers.STUDY``): the names here are copies of the bindings.
"""

from lvae.report.study.frames import (
    FINAL_DCI,
    PILOT_ARMS,
    READOUT_COLUMNS,
    _spread,  # noqa: F401 (lvae.report.diagnosis)
    compute_hours,
    copy_baseline,
    final_dci_table,
    final_generation_table,
    hours_by_device,
    milestone_frame,
    of_plan,
    paper_points,
    paper_values,
    pilot_frame,
    pilot_table,
    replay_candidates,
    replay_checks,
    shipped_configs,
    shipped_runs,
    status_frame,
)
from lvae.report.study.measures import (
    MILESTONE_DCI,
    MILESTONE_VERSION,
    OBJECT_DRAWS,
    PICTURE_CODES,
    PICTURE_REFS,
    ZSHARE_CODES,
    ZSHARE_REFS,
    inner_step_shipped,
    milestone_eval,
    milestone_pictures,
    npz_bytes,
    object_variance,
    pictures_of,
    readout,
    readout_shipped,
    shipped_pictures,
    z_share,
)
from lvae.report.study.plans import (
    BASELINE_PROFILE,
    BETA_CONTROL,
    DIAGNOSIS,
    PLANS,
    READING_PROFILE,
    READINGS,
    STUDY,
    STUDY_CONTROL,
    VANILLA_CONTROL,
    Reading,
    StudyRun,
    label,
    plan,
    run_dir,
    setup,
    study_run,
)
from lvae.report.study.shipping import (
    REPLAY_KL_ATOL,
    REPLAY_RTOL,
    REPLAY_STEPS,
    RESUME_FILE,
    record_hashes,
    replay,
    resume_from_shipped,
    ship,
    shipped_current,
    trained_device,
)
from lvae.report.study.workers import (
    claimed,
    complete,
    hours_left,
    is_done,
    progress,
    run_kind,
    run_task,
    shipped_done,
    train_only,
    work,
    work_on,
)

__all__ = [
    "BASELINE_PROFILE",
    "BETA_CONTROL",
    "DIAGNOSIS",
    "FINAL_DCI",
    "MILESTONE_DCI",
    "MILESTONE_VERSION",
    "OBJECT_DRAWS",
    "PICTURE_CODES",
    "PICTURE_REFS",
    "PILOT_ARMS",
    "PLANS",
    "READINGS",
    "READING_PROFILE",
    "READOUT_COLUMNS",
    "REPLAY_KL_ATOL",
    "REPLAY_RTOL",
    "REPLAY_STEPS",
    "RESUME_FILE",
    "STUDY",
    "STUDY_CONTROL",
    "VANILLA_CONTROL",
    "ZSHARE_CODES",
    "ZSHARE_REFS",
    "Reading",
    "StudyRun",
    "claimed",
    "complete",
    "compute_hours",
    "copy_baseline",
    "final_dci_table",
    "final_generation_table",
    "hours_by_device",
    "hours_left",
    "inner_step_shipped",
    "is_done",
    "label",
    "milestone_eval",
    "milestone_frame",
    "milestone_pictures",
    "npz_bytes",
    "object_variance",
    "of_plan",
    "paper_points",
    "paper_values",
    "pictures_of",
    "pilot_frame",
    "pilot_table",
    "plan",
    "progress",
    "readout",
    "readout_shipped",
    "record_hashes",
    "replay",
    "replay_candidates",
    "replay_checks",
    "resume_from_shipped",
    "run_dir",
    "run_kind",
    "run_task",
    "setup",
    "ship",
    "shipped_configs",
    "shipped_current",
    "shipped_done",
    "shipped_pictures",
    "shipped_runs",
    "status_frame",
    "study_run",
    "train_only",
    "trained_device",
    "work",
    "work_on",
    "z_share",
]
