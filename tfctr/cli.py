"""The ``tfctr`` command line:
``tfctr synth | spec | train | tune | distill | search-fusion | export | serve | predict | convert | demo | bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _hp_value(name: str, text: str):
    """A ``--hp`` value: JSON, or a bare word taken as a string (``structure=parallel``); anything else is an
    error, so ``hidden_units=256,128`` is not silently the string "256,128"."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", text):
            return text
        raise ValueError(f"--hp {name}={text}: the value is not JSON (a list is {name}=[...], a string a bare word "
                         f"or JSON \"...\")") from None


def _parse_hp(items) -> dict:
    from tfctr.training.tuning import read_hp_file

    hp = {}
    for item in items or []:
        if "=" not in item and item.endswith(".json"):
            hp.update(read_hp_file(item))
            continue
        if "=" not in item:
            raise SystemExit(f"--hp expects NAME=VALUE (JSON value) or a JSON file, got {item!r}")
        key, value = item.split("=", 1)
        hp[key] = _hp_value(key, value)
    return hp


def _cmd_synth(args):
    from tfctr.data.synthetic import SyntheticConfig, write_synthetic

    config = SyntheticConfig(n_categorical=args.categorical, n_numeric=args.numeric, n_list=args.lists,
                             vocabulary_size=args.vocabulary_size, cross_vocabulary_size=args.cross_vocabulary_size,
                             categorical_dtype=args.categorical_dtype, seed=args.seed)
    paths = write_synthetic(args.out, args.train_rows, args.valid_rows, args.test_rows, config, args.files)
    print(json.dumps(paths, indent=1))


def _common_args(args) -> dict:
    """Keyword arguments of the options every training command shares (``add_common_options``); options left
    unset take the Python function's own default."""
    optional = {"batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "embedding_dim": args.embedding_dim, "patience": args.patience}
    return dict(train=args.train, valid=args.valid, test=args.test, label=args.label, spec=args.spec,
                exclude=args.exclude, epochs=args.epochs, seed=args.seed, verbose=args.verbose,
                log_every=args.log_every, strategy=args.strategy, mixed_precision=args.mixed_precision,
                min_shard_bytes=args.min_shard_bytes, **{k: v for k, v in optional.items() if v is not None})


def _training_args(args) -> dict:
    """``train`` keyword arguments of the common options and ``add_model_options``."""
    from tfctr.training.tuning import TRAINING_KEYS

    values = _parse_hp(args.hp)
    training = {k: values.pop(k) for k in TRAINING_KEYS if k in values}  # from a --hp file
    common = _common_args(args)
    explicit = {k: common.pop(k) for k in ("learning_rate", "batch_size") if k in common}
    if args.l2_net is not None:
        explicit["l2_net"] = args.l2_net
    training.update(explicit)
    return dict(common, model=args.model, monitor=args.monitor, lr_reductions=args.lr_reductions,
                clipnorm=args.clipnorm or None, routing=args.routing, router_learning_rate=args.router_learning_rate,
                router_every=args.router_every, anneal_steps=args.anneal_steps, hyper_params=values, **training)


def _cmd_train(args):
    from tfctr.training import train

    result = train(out=args.out, overwrite=args.overwrite, **_training_args(args))
    print(json.dumps(result.metrics, indent=1))


def _cmd_tune(args):
    from tfctr.training.tuning import format_leaderboard, read_hp_file, tune

    kwargs = _training_args(args)
    if kwargs.pop("hyper_params"):
        raise ValueError("tune searches the hyper-parameters: give the values to search in --space, not --hp")
    space = read_hp_file(args.space) if args.space else None
    result = tune(kwargs.pop("train"), kwargs.pop("valid"), args.out, trials=args.trials, space=space,
                  prune=not args.no_prune, **kwargs)
    print(format_leaderboard(result.leaderboard, args.monitor))
    print(f"best: {json.dumps(result.best_hp)} -> {result.out / 'best_hp.json'} "
          f"(tfctr train --model {args.model} --hp {result.out / 'best_hp.json'} ...)")


def _cmd_spec(args):
    from tfctr.data import fit_spec, infer_spec

    spec = infer_spec(args.train, label=args.label, exclude=args.exclude)
    if args.fit:
        fit_spec(spec, args.train)
    spec.save(args.out)
    print(spec.describe())
    print(f"written to {args.out}; edit it and pass it to tfctr train --spec {args.out}")


def _cmd_distill(args):
    from tfctr.training import distill

    params = _parse_hp(args.hp)
    if args.type:
        params["interaction_type"] = args.type
    result = distill(args.teacher, out=args.out, overwrite=args.overwrite, student=args.student,
                     student_params=params, alpha=args.alpha, beta=args.beta, finetune_epochs=args.finetune_epochs,
                     finetune_learning_rate=args.finetune_learning_rate, **_common_args(args))
    print(json.dumps(result.summary, indent=1))


def _cmd_search_fusion(args):
    from tfctr.training import search_fusion

    result = search_fusion(out=args.out, overwrite=args.overwrite, num_levels=args.levels, selection=args.selection,
                           algorithm=args.algorithm, retrain_init=args.retrain_init,
                           retrain_epochs=args.retrain_epochs, arch_learning_rate=args.arch_learning_rate,
                           embedding_learning_rate=args.embedding_learning_rate, l2_embedding=args.l2_embedding,
                           retrain_learning_rate=args.retrain_learning_rate, **_common_args(args))
    print(json.dumps(result.metrics, indent=1))


def _cmd_export(args):
    from tfctr.export import export_saved_model

    path = export_saved_model(args.run, None, args.model_base_path, args.name, args.version, args.precision,
                              args.check_data, args.probability_tolerance)
    precision = json.loads((path / "assets.extra" / "model_card.json").read_text())["precision"]
    if "max_abs" in precision:
        print(f"serving in {precision['compute']}: max |Δprobability| {precision['max_abs']:.2e}, mean "
              f"{precision['mean_abs']:.2e} against float32 on {precision['rows']} rows of {precision['check_data']}")
    print(path)


def _cmd_convert(args):
    from tfctr.data.formats import avazu_to_parquet, criteo_to_parquet

    convert = {"criteo": criteo_to_parquet, "avazu": avazu_to_parquet}[args.format]
    print(f"{convert(args.input, args.output)} rows written to {args.output}")


def _cmd_serve(args):
    from tfctr.serving import serve

    serve(args.model_base_path, args.model_name or (), model_config_file=args.model_config_file, port=args.port,
          host=args.host, poll_seconds=args.poll_seconds, rest_port=args.rest_port,
          enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
          batch_timeout_ms=args.batch_timeout_ms, max_rows=args.max_rows_per_request)


def _cmd_predict(args):
    import grpc
    import pyarrow.parquet as pq

    from tfctr.serving import Client

    host, _, port = args.server.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--server {args.server!r}: expected HOST:PORT")
    rows = pq.read_table(args.input)
    try:
        with Client(host or "127.0.0.1", int(port), args.model_name, timeout=args.timeout) as client:
            outputs = client.predict(rows)
    except grpc.RpcError as err:
        raise ConnectionError(f"{args.server} answered {err.code().name}: {err.details()}") from None
    if args.output:
        import pyarrow as pa

        pq.write_table(pa.table({k: v.reshape(len(v), -1)[:, 0] for k, v in outputs.items()}), args.output)
        print(f"{len(outputs['probability'])} predictions written to {args.output}")
    else:
        for value in outputs["probability"]:
            print(f"{value:.6f}")


def _cmd_demo(args):
    from tfctr.demo import run_demo

    run_demo(args.out, train_rows=args.train_rows, epochs=args.epochs)


BENCH_SCRIPTS = {"all": ["all.py"], "list": ["all.py", "--list"], "report": ["report.py"]}


def _cmd_bench(args):
    script, *flags = BENCH_SCRIPTS[args.action]
    path = Path(__file__).resolve().parent.parent / "bench" / script
    if not path.exists():
        raise FileNotFoundError(f"tfctr bench runs the benchmark suite of a source checkout ({path} is missing): "
                                "clone the repository and `pip install -e .` there")
    command = [sys.executable, str(path), *flags] + (["--only", *args.only] if args.only else [])
    raise SystemExit(subprocess.run(command, cwd=path.parent, stderr=sys.stderr).returncode)


class DefaultsShown(argparse.HelpFormatter):
    """Help lines end with the option's default, when it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def add_common_options(p, strategies, *, epochs: int, epochs_help: str, learning_rate_help: str,
                       patience_help: str, embedding_dim_help: str):
    """The data, schedule and runtime options of every command that trains (``train``, ``tune``, ``distill``,
    ``search-fusion``): one definition, passed to the Python functions by ``_common_args``. Options without a
    default here take the function's own (named in their help)."""
    data = p.add_argument_group("data")
    data.add_argument("--train", required=True, help="training split: Parquet file, directory or glob")
    data.add_argument("--valid", required=True, help="validation split (model selection), as --train")
    data.add_argument("--test", help="test split, evaluated once at the end (optional)")
    data.add_argument("--label", default="label", help="the 0/1 label column")
    data.add_argument("--spec", help="a spec.json (from tfctr spec, fitted or not) instead of inferring one")
    data.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    schedule = p.add_argument_group("schedule")
    schedule.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    schedule.add_argument("--batch-size", type=int, help="global batch size (default 1024)")
    schedule.add_argument("--learning-rate", type=float, help=learning_rate_help)
    schedule.add_argument("--embedding-dim", type=int, help=embedding_dim_help)
    schedule.add_argument("--patience", type=int, help=patience_help)
    schedule.add_argument("--seed", type=int, default=0, help="seeds initialisation and shuffling")
    runtime = p.add_argument_group("runtime")
    runtime.add_argument("--strategy", choices=list(strategies), default="default",
                         help="tf.distribute strategy: mirrored = every local GPU; multi_worker and parameter_server "
                              "read the cluster from TF_CONFIG (run the same command on every task). --batch-size is "
                              "the global batch, except under parameter_server where it is one worker's step")
    runtime.add_argument("--mixed-precision", action="store_true",
                         help="float16 (GPU) / bfloat16 (CPU) compute, float32 variables, logits and losses")
    runtime.add_argument("--min-shard-bytes", type=int, default=1 << 20,
                         help="parameter_server: variables of at least twice this size are split over the ps tasks")
    runtime.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bars, 2 one line per epoch")
    runtime.add_argument("--log-every", type=int, help="also write the training loss and metrics to TensorBoard "
                         "(OUT/logs) every N steps (default: once an epoch)")


def add_model_options(p, models):
    """The options of the commands that train one registered model (``train``, ``tune``)."""
    from tfctr.defaults import DEFAULT_CLIPNORM, DEFAULT_MONITOR, TRAINING_MONITORS

    model = p.add_argument_group("model")
    model.add_argument("--model", default="dcnv2", choices=models, help="a registered model")
    model.add_argument("--hp", nargs="*", metavar="NAME=VALUE|FILE.json",
                       help="model hyper-parameters as NAME=VALUE (JSON values), or a JSON file of them such as "
                            "tune's best_hp.json (its learning_rate/batch_size/l2_net set the training options)")
    model.add_argument("--monitor", choices=list(TRAINING_MONITORS), default=DEFAULT_MONITOR,
                       help="validation score that selects the epoch, lowers the learning rate and stops training")
    model.add_argument("--lr-reductions", type=int, default=1,
                       help="plateaus that divide the learning rate by 10 (from the best epoch) before training stops")
    model.add_argument("--clipnorm", type=float, default=DEFAULT_CLIPNORM,
                       help="clip the gradient to this global norm (0 = no clipping)")
    model.add_argument("--l2-net", type=float, help="L2 penalty on the network weights, embeddings excluded "
                       "(default 0)")
    model.add_argument("--routing", choices=["joint", "bilevel"], default="joint",
                       help="models with routers (adaensemble): joint = routers learn with everything else; bilevel "
                            "= routers learn on validation batches, the rest on training batches (AdaEnsemble's "
                            "Alg. 2)")
    model.add_argument("--router-learning-rate", type=float, default=1e-3, help="bilevel: Adam rate of the routers")
    model.add_argument("--router-every", type=int, default=1, help="bilevel: update the routers every N training "
                       "steps")
    model.add_argument("--anneal-steps", type=int,
                       help="sparse MoE layers start dense and drop one expert every N steps down to their k")


def add_out_options(p, what: str):
    p.add_argument("--out", required=True, help=what)
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out (else an error; a "
                   "killed run in it is resumed)")


def build_parser() -> argparse.ArgumentParser:
    """The whole parser; it imports nothing that loads TensorFlow (names and defaults come from
    ``tfctr.defaults``), so ``tfctr --help`` is fast."""
    from tfctr.defaults import (
        DEFAULT_EPOCHS,
        DEFAULT_PATIENCE,
        DISTILL_EPOCHS,
        DISTILL_LEARNING_RATE,
        FINETUNE_EPOCHS,
        FINETUNE_LEARNING_RATE,
        MODEL_NAMES,
        STRATEGIES,
    )

    parser = argparse.ArgumentParser(prog="tfctr", description="CTR models from Parquet to TF Serving.")
    parser.add_argument("--tf-logs", action="store_true",
                        help="show TensorFlow's own C++ log lines (hidden by default; or set TFCTR_TF_LOGS=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help_text):
        return sub.add_parser(name, help=help_text, description=help_text,
                              formatter_class=DefaultsShown)

    p = command("synth", "write Criteo-like synthetic Parquet data with a known true CTR")
    p.add_argument("--out", required=True, help="directory of train/, valid/ and test/")
    p.add_argument("--train-rows", type=int, default=200_000, help="rows of the training split")
    p.add_argument("--valid-rows", type=int, default=20_000, help="rows of the validation split")
    p.add_argument("--test-rows", type=int, default=20_000, help="rows of the test split")
    p.add_argument("--categorical", type=int, default=26, help="categorical fields")
    p.add_argument("--numeric", type=int, default=13, help="numeric (count-like) fields")
    p.add_argument("--lists", type=int, default=0, help="multi-valued (list) fields")
    p.add_argument("--vocabulary-size", type=int, default=1000, help="values per categorical field")
    p.add_argument("--cross-vocabulary-size", type=int,
                   help="values of the fields in second/third-order terms (e.g. 200: crosses learnable from ~1M rows)")
    p.add_argument("--categorical-dtype", choices=["string", "int64"], default="string",
                   help="store categoricals as hex strings or as int64 ids")
    p.add_argument("--files", type=int, default=1, help="files per split")
    p.add_argument("--seed", type=int, default=0, help="seeds the generator")
    p.set_defaults(func=_cmd_synth)

    train_epochs = dict(epochs=DEFAULT_EPOCHS, epochs_help="at most this many epochs (model selection usually stops "
                        "earlier)", learning_rate_help="Adam's learning rate (default: the model's recommended rate, "
                        "1e-3 for most, 1e-2 for lr)", patience_help="epochs without improvement of --monitor before "
                        f"the learning rate drops or training stops (default {DEFAULT_PATIENCE})",
                        embedding_dim_help="D of every field's embedding (default: the model's)")
    p = command("train", "fit the spec and train a model with model.fit")
    add_common_options(p, STRATEGIES, **train_epochs)
    add_model_options(p, MODEL_NAMES)
    add_out_options(p, "run directory (a killed run in it is resumed)")
    p.set_defaults(func=_cmd_train)

    p = command("tune", "search a model's hyper-parameters with Optuna; writes OUT/best_hp.json")
    add_common_options(p, STRATEGIES, **train_epochs)
    add_model_options(p, MODEL_NAMES)
    p.add_argument("--trials", type=int, default=20, help="trials the study holds when done (resumes OUT/study.db)")
    p.add_argument("--space", help="search space JSON file (default: tfctr.training.tuning.default_space(model))")
    p.add_argument("--no-prune", action="store_true", help="run every trial to the end (no median pruning)")
    p.add_argument("--out", required=True, help="study directory (a study in it is resumed)")
    p.set_defaults(func=_cmd_tune)

    p = command("spec", "infer the feature spec of a training split and write it for review")
    p.add_argument("--train", required=True, help="Parquet file, directory or glob")
    p.add_argument("--label", default="label", help="the 0/1 label column")
    p.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    p.add_argument("--fit", action="store_true", help="also fit vocabularies and buckets (large for big data)")
    p.add_argument("--out", required=True, help="spec JSON to write; edit it and pass it to train --spec")
    p.set_defaults(func=_cmd_spec)

    p = command("distill", "KD-DAGFM: distil a trained teacher run into a student, then fine-tune it")
    add_common_options(p, STRATEGIES, epochs=DISTILL_EPOCHS,
                       epochs_help="at most this many distillation epochs (it stops when the student stops getting "
                                   "closer to the teacher on the validation split)",
                       learning_rate_help=f"Adam rate of the distillation (default {DISTILL_LEARNING_RATE})",
                       patience_help="epochs without improvement before the rate drops or a stage stops (default 2)",
                       embedding_dim_help="the student's D (default: the teacher's, whose table the student starts "
                                          "from and keeps frozen while distilling; another D learns its own table)")
    add_out_options(p, "writes OUT/distilled, OUT/finetuned and OUT/summary.json (tfctr export --run OUT exports the "
                       "last stage)")
    p.add_argument("--teacher", required=True, help="the teacher's run directory (tfctr train --out)")
    p.add_argument("--student", default="dagfm", choices=MODEL_NAMES, help="the student model")
    p.add_argument("--type", choices=["inner", "outer", "kernel"], help="DAGFM interaction type")
    p.add_argument("--alpha", type=float, default=0.1, help="weight of the label BCE")
    p.add_argument("--beta", type=float, default=921.6, help="weight of the squared logit gap")
    p.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS,
                   help="at most this many fine-tuning epochs on labels (0 = no KD-DAGFM+ stage)")
    p.add_argument("--finetune-learning-rate", type=float, default=FINETUNE_LEARNING_RATE,
                   help="Adam rate of the fine-tuning, embeddings trainable")
    p.add_argument("--hp", nargs="*", metavar="NAME=VALUE", help="student hyper-parameters, values as JSON")
    p.set_defaults(func=_cmd_distill)

    p = command("search-fusion", "OptFusion: search the fusion graph, derive it, retrain it")
    add_common_options(p, STRATEGIES, epochs=5, epochs_help="search epochs (per stage when sequential)",
                       learning_rate_help="Adam rate of the network weights (default 1e-3)",
                       patience_help="epochs without improvement before the rate drops or a stage stops (default 1, "
                                     "as the authors)",
                       embedding_dim_help="D of every field's embedding (default 16)")
    add_out_options(p, "run directory of the retrained model (+ architecture.json, search/)")
    p.add_argument("--levels", type=int, default=3, help="n, (cross, MLP) levels")
    p.add_argument("--selection", choices=["soft", "hard", "one_hot"], default="soft",
                   help="soft: keep the softmax(β) mixture; hard: soft search, keep each node's argmax operation (the "
                        "authors' Hard); one_hot: straight-through one-hot search")
    p.add_argument("--algorithm", choices=["one_shot", "sequential"], default="one_shot",
                   help="one_shot: connections and operations together; sequential: connections, then operations")
    p.add_argument("--retrain-init", choices=["supernet", "scratch"], default="supernet",
                   help="start the retraining from the search's weights or from scratch")
    p.add_argument("--retrain-epochs", type=int, default=5, help="at most this many retraining epochs")
    p.add_argument("--arch-learning-rate", type=float, default=0.1, help="Adam rate of α and β")
    p.add_argument("--embedding-learning-rate", type=float,
                   help="the search's Adam rate of the embeddings (default: --learning-rate)")
    p.add_argument("--l2-embedding", type=float, default=0.0,
                   help="L2 penalty on the embedding rows each batch uses (search and retraining)")
    p.add_argument("--retrain-learning-rate", type=float, help="Adam rate of the retraining (default: "
                   "--learning-rate)")
    p.set_defaults(func=_cmd_search_fusion)

    from tfctr.defaults import DEFAULT_PROBABILITY_TOLERANCE, SERVING_PRECISIONS

    p = command("export", "export a run as a TF Serving SavedModel")
    p.add_argument("--run", required=True, help="a run directory of train, search-fusion or distill (its last stage)")
    p.add_argument("--model-base-path", required=True, help="TF Serving's model base path (versions go in NAME/)")
    p.add_argument("--name", required=True, help="the model name clients ask for")
    p.add_argument("--version", type=int, help="version number (default: the newest there + 1)")
    p.add_argument("--precision", choices=SERVING_PRECISIONS, default="float32",
                   help="bfloat16: the served graph computes in bfloat16 (fast on CPUs with AMX/AVX512-BF16, slower "
                        "without), exported only if its probabilities stay within --probability-tolerance of float32")
    p.add_argument("--check-data", help="Parquet rows for the bfloat16 check (default: the run's validation split)")
    p.add_argument("--probability-tolerance", type=float, default=DEFAULT_PROBABILITY_TOLERANCE,
                   help="largest |Δprobability| a bfloat16 export may have on the check rows (default %(default)s)")
    p.set_defaults(func=_cmd_export)

    p = command("convert", "convert Criteo TSV or Avazu CSV to Parquet")
    p.add_argument("format", choices=["criteo", "avazu"], help="the input's layout")
    p.add_argument("input", help="the TSV/CSV file")
    p.add_argument("output", help="the Parquet file to write")
    p.set_defaults(func=_cmd_convert)

    p = command("serve", "serve SavedModels over TF Serving's gRPC API and, with --rest-port, its REST API")
    p.add_argument("--model-base-path", help="directory holding one folder of versions per model")
    p.add_argument("--model-name", nargs="+", help="the models (folders of --model-base-path) to serve, each at its "
                   "latest version")
    p.add_argument("--model-config-file", help="instead of the two above: a TF Serving model config (text "
                   "format: several models, version policies latest/all/specific, version labels)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port")
    p.add_argument("--rest-port", type=int, default=0, help="TF Serving REST API port (0 = off)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions")
    p.add_argument("--enable-batching", action="store_true", help="merge concurrent Predict requests")
    p.add_argument("--max-batch-size", type=int, default=256, help="rows that close a batch at once")
    p.add_argument("--batch-timeout-ms", type=float, default=2.0, help="how long a batch waits for more requests")
    p.add_argument("--max-rows-per-request", type=int, default=65_536,
                   help="a request declaring more rows is refused (INVALID_ARGUMENT) before its values are decoded")
    p.set_defaults(func=_cmd_serve)

    p = command("predict", "send the rows of a Parquet file to a server (gRPC Predict)")
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument("--model-name", required=True, help="the served model to ask")
    p.add_argument("--input", required=True, help="Parquet rows with the raw features")
    p.add_argument("--output", help="write the outputs to this Parquet file instead of printing")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before the request fails")
    p.set_defaults(func=_cmd_predict)

    p = command("demo", "synthetic data -> DCNv2 -> metrics vs Bayes-optimal -> export -> reload")
    p.add_argument("--out", default="demo_out", help="directory of everything the demo writes (replaced)")
    p.add_argument("--train-rows", type=int, default=200_000, help="synthetic training rows")
    p.add_argument("--epochs", type=int, default=3, help="training epochs")
    p.set_defaults(func=_cmd_demo)

    p = command("bench", "run the benchmark suite and write BENCHMARKS.md (source checkout only)")
    p.add_argument("action", choices=sorted(BENCH_SCRIPTS),
                   help="all: run every benchmark, then the report; list: print the suite's commands; report: "
                        "re-render BENCHMARKS.md, its plots and README's summary from bench/results")
    p.add_argument("--only", nargs="+", help="with all: run only these jobs (result names, see list)")
    p.set_defaults(func=_cmd_bench)
    return parser


def _message(err: Exception) -> str:
    """One line for a failed command: a bare ``FileNotFoundError(path)`` (as pyarrow raises) says what it is; an
    error raised by tfctr's Python code inside the input pipeline (a ``tf.errors.OpError`` quoting it, e.g. a
    label value that is not 0/1) gives that error's own line."""
    if isinstance(err, FileNotFoundError) and err.filename is None and len(err.args) == 1:
        return f"no such file or directory: {err.args[0]}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if hasattr(err, "op") and hasattr(err, "error_code"):  # a TensorFlow OpError
        raised = [line for line in lines if re.match(r"^[A-Z]\w*(Error|Exception): ", line)]
        useful = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "[[",
                                                                  "<", "Traceback", "File "))]
        lines = raised or useful or lines
    return lines[0] if lines else type(err).__name__


def main(argv=None) -> int:
    from tfctr._quiet import TF_LOGS_VARIABLE, native_stderr_hidden

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--tf-logs" in argv:
        os.environ[TF_LOGS_VARIABLE] = "1"
    with native_stderr_hidden():
        import tfctr  # noqa: F401  (pins legacy Keras before TensorFlow loads)

        args = build_parser().parse_args(argv)
        import tensorflow as tf  # loaded by tfctr: for its error types
        try:
            args.func(args)
        except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, ImportError,
                ConnectionError, tf.errors.OpError) as err:
            print(f"tfctr {args.command}: error: {_message(err)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
