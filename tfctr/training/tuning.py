"""``tfctr tune``: hyper-parameter search over ``train`` with Optuna (TPE sampling, median pruning).

Every trial is one ``train`` run in ``OUT/trials/NNNN`` scored by the validation selection score of its selected
epoch (``ModelSelection``: AUC − logloss by default, higher is better); a trial whose per-epoch score falls
below the median of earlier trials at the same epoch is pruned. The study lives in ``OUT/study.db`` (SQLite),
so running the same command again resumes it and adds trials up to ``trials`` in all. At the end:

* ``OUT/best_hp.json``: the best trial's values as one flat JSON object, the file ``tfctr train --hp`` reads
  (the training keys ``TRAINING_KEYS`` and the model's hyper-parameters);
* ``OUT/leaderboard.md``: every finished trial ranked by its score (also returned and printed by the CLI).

A search space is a JSON object ``{name: spec}`` with spec one of ``{"float": [low, high], "log": bool}``,
``{"int": [low, high]}`` or ``{"choice": [v1, v2, ...]}`` (values may be lists, e.g. hidden units).
``default_space(model)`` keeps the entries of ``DEFAULT_SPACE`` that the model accepts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import tensorflow as tf

from tfctr.models import hyper_parameters
from tfctr.models.registry import RENAMED
from tfctr.training import distribute
from tfctr.training.selection import DEFAULT_MONITOR, monitor_score
from tfctr.training.train import train

TRAINING_KEYS = ("learning_rate", "batch_size", "l2_net")

DEFAULT_SPACE = {
    "learning_rate": {"float": [1e-4, 1e-2], "log": True},
    "batch_size": {"choice": [256, 512, 1024, 2048, 4096]},
    "embedding_dim": {"choice": [8, 16, 32]},
    "l2_embedding": {"choice": [0.0, 1e-5, 1e-4, 1e-3, 1e-2]},
    "l2_net": {"choice": [0.0, 1e-6, 1e-5, 1e-4]},
    "dropout": {"choice": [0.0, 0.1, 0.2, 0.3, 0.4]},
    "batch_norm": {"choice": [False, True]},
    "hidden_units": {"choice": [[128, 64], [256, 128], [400, 400, 400], [512, 256, 128]]},
    "cin_layer_sizes": {"choice": [[64, 64], [128, 128], [200, 200, 200]]},
    "num_layers": {"int": [1, 5]},
}


def default_space(model: str) -> dict:
    """The entries of ``DEFAULT_SPACE`` that ``train`` or model ``model`` accepts."""
    accepted = set(hyper_parameters(model)) | set(TRAINING_KEYS)
    return {name: spec for name, spec in DEFAULT_SPACE.items() if name in accepted}


def check_space(space: dict, model: str) -> dict:
    """Validates a search space against model ``model``; raises ``ValueError`` naming the bad entry."""
    accepted = set(hyper_parameters(model)) | set(TRAINING_KEYS)
    accepted |= {former for former, current in RENAMED.items() if current in accepted}  # deprecated names
    for name, spec in space.items():
        if name not in accepted:
            raise ValueError(f"search space: '{name}' is neither a training key {list(TRAINING_KEYS)} nor a "
                             f"hyper-parameter of '{model}' ({sorted(hyper_parameters(model))})")
        kinds = [k for k in ("float", "int", "choice") if k in spec]
        if len(kinds) != 1:
            raise ValueError(f"search space: '{name}' must have exactly one of 'float', 'int', 'choice', got {spec}")
        values = spec[kinds[0]]
        if not isinstance(values, list) or not values or (kinds[0] != "choice" and len(values) != 2):
            raise ValueError(f"search space: '{name}': {kinds[0]} needs "
                             + ("a non-empty list" if kinds[0] == "choice" else "[low, high]") + f", got {values!r}")
    return space


def suggest(trial, space: dict) -> dict:
    """One trial's values of ``space`` (choices are sampled by index so lists and None are allowed)."""
    values = {}
    for name, spec in space.items():
        if "float" in spec:
            values[name] = trial.suggest_float(name, *spec["float"], log=bool(spec.get("log")))
        elif "int" in spec:
            values[name] = trial.suggest_int(name, *spec["int"])
        else:
            choices = spec["choice"]
            values[name] = choices[trial.suggest_categorical(name, list(range(len(choices))))]
    return values


def split_hp(values: dict) -> tuple[dict, dict]:
    """``(training keyword arguments, model hyper-parameters)`` of a flat ``best_hp.json`` dict."""
    training = {k: v for k, v in values.items() if k in TRAINING_KEYS}
    return training, {k: v for k, v in values.items() if k not in TRAINING_KEYS}


def read_hp_file(path) -> dict:
    """The flat JSON object of a ``--hp`` file (``best_hp.json``)."""
    try:
        values = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"hyper-parameter file '{path}' is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"hyper-parameter file '{path}' must hold a JSON object, got {type(values).__name__}")
    return values


class _ReportToTrial(tf.keras.callbacks.Callback):
    """Reports each epoch's validation score to the Optuna trial and stops a trial the pruner rejects."""

    def __init__(self, trial, monitor: str):
        super().__init__()
        self.trial, self.monitor, self.pruned_at = trial, monitor, None

    def on_epoch_end(self, epoch, logs=None):
        self.trial.report(monitor_score(self.monitor, logs or {}), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


@dataclasses.dataclass
class TuneResult:
    """What ``tune`` returns: the best values (``best_hp.json``), its score, and the leaderboard rows."""

    best_hp: dict
    best_score: float
    leaderboard: list[dict]
    out: Path


def tune(train_path: str, valid: str, out: str, model: str = "dcnv2", trials: int = 20, space: dict | None = None,
         monitor: str = DEFAULT_MONITOR, seed: int = 0, prune: bool = True, verbose: int = 0,
         **train_args) -> TuneResult:
    """Searches hyper-parameters of ``model`` with ``trials`` runs of ``train`` (resuming ``OUT/study.db``).

    Args:
        train_path, valid: the Parquet splits (the test split is never looked at while tuning).
        out: the study directory (``study.db``, ``trials/``, ``best_hp.json``, ``leaderboard.md``).
        model: a registered model name.
        trials: number of finished or pruned trials the study should hold when this call returns.
        space: the search space (default: ``default_space(model)``).
        monitor: the selection score (``"auc"``, ``"logloss"``, ``"auc-logloss"``) maximised by the search.
        seed: seed of the sampler and of every trial's training.
        prune: stop trials below the running median (Optuna ``MedianPruner``) early.
        train_args: further ``train`` arguments shared by every trial (``epochs``, ``patience``, ``label``,
            ``exclude``, ``strategy``, ...). Under a cluster strategy every task runs the same call, each with
            its own copy of the study; only the chief writes the result files.
    """
    try:
        import optuna
    except ImportError:
        raise ImportError("tfctr tune needs Optuna: pip install 'tfctr[tune]'") from None

    space = check_space(dict(space or default_space(model)), model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    role = distribute.ClusterRole.from_environment()
    study_file = out / ("study.db" if role.is_chief else f"study-{role.task_type}-{role.task_id}.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"tfctr-{model}", storage=f"sqlite:///{study_file}", load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if prune
        else optuna.pruners.NopPruner())
    fixed = dict(train_args, monitor=monitor, seed=seed, verbose=verbose)

    def objective(trial):
        values = suggest(trial, space)
        training, hp = split_hp(values)
        report = _ReportToTrial(trial, monitor)
        result = train(train_path, valid, str(out / "trials" / f"{trial.number:04d}"), model=model,
                       hyper_params=hp, callbacks=[report], **{**fixed, **training})
        if report.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {report.pruned_at}")
        selection = result.metrics["training"]["selection"]
        trial.set_user_attr("selected_epoch", selection["selected_epoch"])
        trial.set_user_attr("values", values)
        return selection["selected_score"]

    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    if len(done) < trials:
        study.optimize(objective, n_trials=trials - len(done))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"tune: none of the {len(study.trials)} trials of {model} finished (all pruned or failed)")
    board = leaderboard(study)
    best = study.best_trial
    best_hp = best.user_attrs["values"]
    if role.is_chief:
        (out / "best_hp.json").write_text(json.dumps(best_hp, indent=1))
        (out / "leaderboard.md").write_text(format_leaderboard(board, monitor) + "\n")
    return TuneResult(best_hp, float(best.value), board, out)


def leaderboard(study) -> list[dict]:
    """Every trial of ``study`` as a row (number, state, score, selected epoch, values), best first."""
    rows = []
    for t in study.trials:
        rows.append({"trial": t.number, "state": t.state.name.lower(), "score": t.value,
                     "selected_epoch": t.user_attrs.get("selected_epoch"),
                     "values": t.user_attrs.get("values") or t.params})
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))


def format_leaderboard(rows: list[dict], monitor: str) -> str:
    """The leaderboard as a Markdown table."""
    lines = [f"| rank | trial | state | valid {monitor} | epoch | values |", "|---|---|---|---|---|---|"]
    for rank, row in enumerate(rows, 1):
        score = "–" if row["score"] is None else f"{row['score']:.4f}"
        epoch = row["selected_epoch"] if row["selected_epoch"] is not None else "–"
        lines.append(f"| {rank} | {row['trial']} | {row['state']} | {score} | {epoch} | "
                     f"`{json.dumps(row['values'], separators=(',', ':'))}` |")
    return "\n".join(lines)
