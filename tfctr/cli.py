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


def _training_args(args) -> dict:
    """``train`` keyword arguments of the shared training options (``add_training_options``)."""
    from tfctr.training.tuning import TRAINING_KEYS

    values = _parse_hp(args.hp)
    training = {k: values.pop(k) for k in TRAINING_KEYS if k in values}  # from a --hp file
    explicit = {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "l2_net": args.l2_net}
    training.update({k: v for k, v in explicit.items() if v is not None})
    return dict(train=args.train, valid=args.valid, test=args.test, model=args.model, label=args.label,
                epochs=args.epochs, embedding_dim=args.embedding_dim, seed=args.seed, monitor=args.monitor,
                patience=args.patience, lr_reductions=args.lr_reductions, clipnorm=args.clipnorm or None,
                routing=args.routing, router_learning_rate=args.router_learning_rate,
                router_every=args.router_every, anneal_steps=args.anneal_steps,
                spec=args.spec, exclude=args.exclude, hyper_params=values, verbose=args.verbose,
                strategy=args.strategy, mixed_precision=args.mixed_precision, min_shard_bytes=args.min_shard_bytes,
                **training)


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
    from tfctr.features import FeatureSpec

    spec = FeatureSpec.infer(args.train, label=args.label, exclude=args.exclude)
    if args.fit:
        spec.fit(args.train)
    spec.save(args.out)
    print(spec.describe())
    print(f"written to {args.out}; edit it and pass it to tfctr train --spec {args.out}")


def _cmd_distill(args):
    from tfctr.training import distill

    params = _parse_hp(args.hp)
    if args.type:
        params["interaction_type"] = args.type
    result = distill(args.teacher, args.train, args.valid, args.out, student=args.student, student_params=params,
                     test=args.test, alpha=args.alpha, beta=args.beta, epochs=args.epochs,
                     finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                     learning_rate=args.learning_rate, finetune_learning_rate=args.finetune_learning_rate,
                     seed=args.seed, patience=args.patience, verbose=args.verbose)
    print(json.dumps(result.summary, indent=1))


def _cmd_search_fusion(args):
    from tfctr.training import search_fusion

    result = search_fusion(args.train, args.valid, args.out, test=args.test, num_levels=args.levels,
                           selection=args.selection, algorithm=args.algorithm, retrain_init=args.retrain_init,
                           embedding_dim=args.embedding_dim, epochs=args.epochs, retrain_epochs=args.retrain_epochs,
                           batch_size=args.batch_size, learning_rate=args.learning_rate,
                           arch_learning_rate=args.arch_learning_rate,
                           embedding_learning_rate=args.embedding_learning_rate, l2_embedding=args.l2_embedding,
                           retrain_learning_rate=args.retrain_learning_rate, seed=args.seed,
                           patience=args.patience, verbose=args.verbose)
    print(json.dumps(result.metrics, indent=1))


def _cmd_export(args):
    from tfctr.export import export_saved_model

    path = export_saved_model(args.run, None, args.model_base_path, args.name, args.version)
    print(path)


def _cmd_convert(args):
    from tfctr.data.formats import avazu_to_parquet, criteo_to_parquet

    convert = {"criteo": criteo_to_parquet, "avazu": avazu_to_parquet}[args.format]
    print(f"{convert(args.input, args.output)} rows written to {args.output}")


def _cmd_serve(args):
    from tfctr.serving import serve

    serve(args.model_base_path, args.model_name, port=args.port, host=args.host, poll_seconds=args.poll_seconds,
          rest_port=args.rest_port, enable_batching=args.enable_batching, max_batch_size=args.max_batch_size,
          batch_timeout_ms=args.batch_timeout_ms, max_rows=args.max_rows_per_request)


def _cmd_predict(args):
    import pyarrow.parquet as pq

    from tfctr.serving import Client

    host, _, port = args.server.rpartition(":")
    with Client(host or "127.0.0.1", int(port), args.model_name, timeout=args.timeout) as client:
        outputs = client.predict(pq.read_table(args.input))
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
    raise SystemExit(subprocess.run(command, cwd=path.parent).returncode)


def add_training_options(p, models, strategies):
    """The data and training options of every command that trains (``train``, ``tune``), with one set of
    defaults: those of ``tfctr.training.train``."""
    from tfctr.training.selection import DEFAULT_MONITOR, TRAINING_MONITORS
    from tfctr.training.train import DEFAULT_CLIPNORM, DEFAULT_EPOCHS, DEFAULT_PATIENCE

    p.add_argument("--train", required=True, help="Parquet file, directory or glob")
    p.add_argument("--valid", required=True)
    p.add_argument("--test")
    p.add_argument("--label", default="label")
    p.add_argument("--model", default="dcnv2", choices=models)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="at most this many epochs (model selection "
                   "usually stops earlier)")
    p.add_argument("--batch-size", type=int, help="global batch size (default 1024)")
    p.add_argument("--learning-rate", type=float, help="Adam's learning rate (default: the model's recommended "
                   "rate, 1e-3 for most, 1e-2 for lr)")
    p.add_argument("--embedding-dim", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--monitor", choices=list(TRAINING_MONITORS), default=DEFAULT_MONITOR,
                   help="validation score that selects the epoch, lowers the learning rate and stops training")
    p.add_argument("--patience", type=int, default=DEFAULT_PATIENCE,
                   help="epochs without improvement of --monitor before the learning rate drops or training stops")
    p.add_argument("--lr-reductions", type=int, default=1,
                   help="plateaus that divide the learning rate by 10 (from the best epoch) before training stops")
    p.add_argument("--clipnorm", type=float, default=DEFAULT_CLIPNORM,
                   help="clip the gradient to this global norm (0 = no clipping)")
    p.add_argument("--l2-net", type=float, help="L2 penalty on the network weights, embeddings excluded (default 0)")
    p.add_argument("--routing", choices=["joint", "bilevel"], default="joint",
                   help="models with routers (adaensemble): joint = routers learn with everything else; bilevel = "
                        "routers learn on validation batches, the rest on training batches (AdaEnsemble's Alg. 2)")
    p.add_argument("--router-learning-rate", type=float, default=1e-3, help="bilevel: Adam rate of the routers")
    p.add_argument("--router-every", type=int, default=1, help="bilevel: update the routers every N training steps")
    p.add_argument("--anneal-steps", type=int,
                   help="sparse MoE layers start dense and drop one expert every N steps down to their k")
    p.add_argument("--spec", help="a spec.json (from tfctr spec, fitted or not) instead of inferring one")
    p.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    p.add_argument("--hp", nargs="*", metavar="NAME=VALUE|FILE.json",
                   help="model hyper-parameters as NAME=VALUE (JSON values), or a JSON file of them such as "
                        "tune's best_hp.json (its learning_rate/batch_size/l2_net set the training options)")
    p.add_argument("--strategy", choices=list(strategies), default="default",
                   help="tf.distribute strategy: mirrored = every local GPU; multi_worker and parameter_server read "
                        "the cluster from TF_CONFIG (run the same command on every task). --batch-size is the "
                        "global batch, except under parameter_server where it is one worker's step")
    p.add_argument("--mixed-precision", action="store_true",
                   help="float16 (GPU) / bfloat16 (CPU) compute, float32 variables, logits and losses")
    p.add_argument("--min-shard-bytes", type=int, default=1 << 20,
                   help="parameter_server: variables of at least twice this size are split over the ps tasks")
    p.add_argument("--verbose", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    from tfctr.models import available
    from tfctr.training.distill import (
        DISTILL_EPOCHS,
        DISTILL_LEARNING_RATE,
        FINETUNE_EPOCHS,
        FINETUNE_LEARNING_RATE,
    )
    from tfctr.training.distribute import STRATEGIES

    parser = argparse.ArgumentParser(prog="tfctr", description="CTR models from Parquet to TF Serving.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write Criteo-like synthetic Parquet data with a known true CTR")
    p.add_argument("--out", required=True)
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--valid-rows", type=int, default=20_000)
    p.add_argument("--test-rows", type=int, default=20_000)
    p.add_argument("--categorical", type=int, default=26)
    p.add_argument("--numeric", type=int, default=13)
    p.add_argument("--lists", type=int, default=0)
    p.add_argument("--vocabulary-size", type=int, default=1000)
    p.add_argument("--cross-vocabulary-size", type=int,
                   help="values of the fields in second/third-order terms (e.g. 200: crosses learnable from ~1M rows)")
    p.add_argument("--categorical-dtype", choices=["string", "int64"], default="string",
                   help="store categoricals as hex strings or as int64 ids")
    p.add_argument("--files", type=int, default=1, help="files per split")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train", help="fit the spec and train a model with model.fit")
    add_training_options(p, available(), STRATEGIES)
    p.add_argument("--out", required=True, help="run directory (a killed run in it is resumed)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out (else an error)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("tune", help="search a model's hyper-parameters with Optuna; writes OUT/best_hp.json")
    add_training_options(p, available(), STRATEGIES)
    p.add_argument("--trials", type=int, default=20, help="trials the study holds when done (resumes OUT/study.db)")
    p.add_argument("--space", help="search space JSON file (default: tfctr.training.tuning.default_space(model))")
    p.add_argument("--no-prune", action="store_true", help="run every trial to the end (no median pruning)")
    p.add_argument("--out", required=True, help="study directory")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("spec", help="infer the feature spec of a training split and write it for review")
    p.add_argument("--train", required=True, help="Parquet file, directory or glob")
    p.add_argument("--label", default="label")
    p.add_argument("--exclude", nargs="*", default=[], help="columns that are not features")
    p.add_argument("--fit", action="store_true", help="also fit vocabularies and buckets (large for big data)")
    p.add_argument("--out", required=True, help="spec JSON to write; edit it and pass it to train --spec")
    p.set_defaults(func=_cmd_spec)

    p = sub.add_parser("distill", help="KD-DAGFM: distil a trained teacher run into a student, then fine-tune it")
    p.add_argument("--teacher", required=True, help="the teacher's run directory (tfctr train --out)")
    p.add_argument("--train", required=True)
    p.add_argument("--valid", required=True)
    p.add_argument("--test")
    p.add_argument("--out", required=True, help="writes OUT/distilled, OUT/finetuned and OUT/summary.json")
    p.add_argument("--student", default="dagfm", choices=available())
    p.add_argument("--type", choices=["inner", "outer", "kernel"], help="DAGFM interaction type")
    p.add_argument("--alpha", type=float, default=0.1, help="weight of the label BCE")
    p.add_argument("--beta", type=float, default=921.6, help="weight of the squared logit gap")
    p.add_argument("--epochs", type=int, default=DISTILL_EPOCHS,
                   help="at most this many distillation epochs (it stops when the student stops getting closer to the "
                        "teacher on the validation split)")
    p.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS,
                   help="at most this many fine-tuning epochs on labels (0 = no KD-DAGFM+ stage)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--learning-rate", type=float, default=DISTILL_LEARNING_RATE, help="Adam rate of the distillation")
    p.add_argument("--finetune-learning-rate", type=float, default=FINETUNE_LEARNING_RATE,
                   help="Adam rate of the fine-tuning, embeddings trainable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--hp", nargs="*", metavar="NAME=VALUE", help="student hyper-parameters, values as JSON")
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("search-fusion", help="OptFusion: search the fusion graph, derive it, retrain it")
    p.add_argument("--train", required=True)
    p.add_argument("--valid", required=True)
    p.add_argument("--test")
    p.add_argument("--out", required=True, help="run directory of the retrained model (+ architecture.json)")
    p.add_argument("--levels", type=int, default=3, help="n, (cross, MLP) levels")
    p.add_argument("--selection", choices=["soft", "hard", "one_hot"], default="soft",
                   help="soft: keep the softmax(β) mixture; hard: soft search, keep each node's argmax operation (the "
                        "authors' Hard); one_hot: straight-through one-hot search")
    p.add_argument("--algorithm", choices=["one_shot", "sequential"], default="one_shot")
    p.add_argument("--retrain-init", choices=["supernet", "scratch"], default="supernet")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5, help="search epochs (per stage when sequential)")
    p.add_argument("--retrain-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--arch-learning-rate", type=float, default=0.1)
    p.add_argument("--embedding-learning-rate", type=float,
                   help="the search's Adam rate of the embeddings (default: --learning-rate)")
    p.add_argument("--l2-embedding", type=float, default=0.0,
                   help="L2 penalty on the embedding rows each batch uses (search and retraining)")
    p.add_argument("--retrain-learning-rate", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=1)
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(func=_cmd_search_fusion)

    p = sub.add_parser("export", help="export a run as a TF Serving SavedModel")
    p.add_argument("--run", required=True)
    p.add_argument("--model-base-path", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=int)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("convert", help="convert Criteo TSV or Avazu CSV to Parquet")
    p.add_argument("format", choices=["criteo", "avazu"])
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("serve", help="serve SavedModels over TF Serving's gRPC API (embedded server)")
    p.add_argument("--model-base-path", required=True)
    p.add_argument("--model-name", required=True, nargs="+")
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

    p = sub.add_parser("predict", help="send the rows of a Parquet file to a server (gRPC Predict)")
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument("--model-name", required=True)
    p.add_argument("--input", required=True, help="Parquet rows with the raw features")
    p.add_argument("--output", help="write the outputs to this Parquet file instead of printing")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("demo", help="synthetic data -> DCNv2 -> metrics vs Bayes-optimal -> export -> reload")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--train-rows", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=3)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("bench", help="run the benchmark suite and write BENCHMARKS.md (source checkout only)")
    p.add_argument("action", choices=sorted(BENCH_SCRIPTS),
                   help="all: run every benchmark, then the report; list: print the suite's commands; report: "
                        "re-render BENCHMARKS.md, its plots and README's summary from bench/results")
    p.add_argument("--only", nargs="+", help="with all: run only these jobs (result names, see list)")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    import tfctr  # noqa: F401  (pins legacy Keras before TensorFlow loads)

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, ImportError) as err:
        print(f"tfctr {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
