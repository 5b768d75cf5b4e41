"""``sensorops`` command line: inspect and move models in the MLflow registry.

Usage::

    sensorops models list [NAME]
    sensorops models show NAME[@ALIAS|/VERSION]          # e.g. sensorops-classifier@production
    sensorops models promote NAME VERSION --to staging|production|archived [--model-input PATH]
                             [--env ENV] [--params FILE]
    sensorops models rollback NAME [--to-version V] [--env ENV] [--params FILE]
    sensorops models history NAME
    sensorops models doctor NAME [--fix]                  # find and repair inconsistencies
    sensorops serve [NAME[@ALIAS]] [--port P] ...        # online serving (sensorops.serving.cli)

Every command takes ``--tracking-uri`` (default ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<project root>/mlflow.db``) and ``--json`` (machine-readable output). Default paths
are resolved against the project root (the Kedro project around the working directory), never
the working directory itself.

``promote`` and ``rollback`` read the ``promotion`` parameters as ``kedro run --env ENV`` does:
``conf/base`` merged with ``conf/<ENV>`` (soft merge) by Kedro's ``OmegaConfigLoader``;
``--params FILE`` (a YAML with a ``promotion`` key) is merged on top, its keys winning.

The same commands are available as ``kedro models ...`` inside the project: Kedro imports
``<package>.cli`` and requires a click group named ``cli`` there (:data:`cli`), whose commands it
adds to its own.

Exit codes: 0 ok; 1 promotion refused by a gate; 2 usage error or unknown model/version/alias;
3 tracking server unreachable; 4 another promotion holds the model's lease; 5 a transition
failed part-way and was undone; 6 ``doctor`` found inconsistencies it did not (or could not) fix;
7 the tracking server refused the login (HTTP 401) or the permission (HTTP 403); nothing changed.

A login may ride in the URI (``http://user:secret@host:5000``): it moves to
``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` and every printed URI is masked. Names and versions are
checked before anything is contacted (exit 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from sensorops.console import quiet_third_party_warnings
from sensorops.registry.errors import RegistryConfigError, RegistryError

logger = logging.getLogger(__name__)
quiet_third_party_warnings()  # Kedro imports this module first: the earliest place for them

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_MODEL_INPUT = "data/05_model_input/model_input.npz"
"""``mi_model_input``'s file (``conf/base/catalog_ingestion.yml``), relative to the project root."""
DEFAULT_CONF = "conf"
"""Kedro's configuration source, relative to the project root."""
DEFAULT_ENV = "local"
BASE_ENV = "base"


def _project_path(relative: str) -> Path:
    """``relative`` under :func:`sensorops.tracking.project_root` (absolute)."""
    from sensorops.tracking import project_root

    return project_root() / relative


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,255}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,255}")


def model_name(text: str) -> str:
    """argparse type of a registered model name: letters, digits, ``._+-`` and spaces.

    ``/`` and ``@`` separate versions and aliases in references (``NAME/3``, ``NAME@production``)
    and in ``models:/`` URIs, so a name holding one can never be addressed; it is a usage error.
    """
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid model name {text!r}: use letters, digits, '.', '_', '+', '-' and spaces "
            "(no '/' or '@'), starting with a letter or digit"
        )
    return text


def model_version(text: str) -> str:
    """argparse type of a model version: a positive integer (MLflow numbers versions 1, 2, ...)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid version {text!r}: a positive integer (1, 2, ...)"
        )
    return str(int(text))


def model_ref(text: str) -> str:
    """argparse type of ``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION``, each part checked."""
    name, sep, rest = text.partition("@") if "@" in text else text.partition("/")
    model_name(name)
    if sep == "@" and not _ALIAS.fullmatch(rest):
        raise argparse.ArgumentTypeError(f"invalid alias {rest!r} in {text!r}")
    if sep == "/":
        model_version(rest)
    return text


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking/registry URI (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///<project root>/mlflow.db)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    parser = argparse.ArgumentParser(prog="sensorops", description="sensorops MLOps tools")
    top = parser.add_subparsers(dest="group", required=True)
    models = top.add_parser(
        "models", help="MLflow model registry: list, show, promote, rollback, history, doctor"
    )
    sub = models.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "list", parents=[common], help="list registered models, or the versions of NAME"
    )
    p.add_argument("name", nargs="?", type=model_name, help="registered model name")

    p = sub.add_parser("show", parents=[common], help="version details and lineage chain")
    p.add_argument("ref", type=model_ref, help="NAME, NAME@ALIAS or NAME/VERSION")

    p = sub.add_parser(
        "promote", parents=[common], help="move a version to a stage through the gates"
    )
    p.add_argument("name", type=model_name, help="registered model name")
    p.add_argument("version", type=model_version, help="version number")
    p.add_argument(
        "--to", dest="target", required=True, choices=["staging", "production", "archived"]
    )
    p.add_argument("--reason", default="", help="why (stored in the audit trail)")
    p.add_argument(
        "--model-input",
        default=None,
        help="ModelInput .npz whose test split feeds the no-regression gate "
        f"(default: <project root>/{DEFAULT_MODEL_INPUT})",
    )
    _config_args(p)
    p.add_argument(
        "--margin-points", type=float, default=None, help="override the allowed regression margin"
    )

    p = sub.add_parser("rollback", parents=[common], help="restore the previous production version")
    p.add_argument("name", type=model_name, help="registered model name")
    p.add_argument(
        "--to-version",
        default=None,
        type=model_version,
        help="go back to this earlier production version",
    )
    p.add_argument("--reason", default="", help="why (stored in the audit trail)")
    _config_args(p)

    p = sub.add_parser("history", parents=[common], help="transition history of a registered model")
    p.add_argument("name", type=model_name, help="registered model name")

    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="check a registered model for inconsistencies (half-done changes of killed "
        "processes, several stage holders, stray aliases, missing artifacts) and fix them",
    )
    p.add_argument("name", type=model_name, help="registered model name")
    p.add_argument("--fix", action="store_true", help="repair what was found (takes the lease)")
    _config_args(p)
    return parser


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        default=None,
        help="Kedro environment whose conf/<ENV> overrides conf/base for the 'promotion' "
        f"parameters (default: $KEDRO_ENV, else {DEFAULT_ENV})",
    )
    p.add_argument(
        "--params",
        default=None,
        help="YAML with a 'promotion' key, merged over the project's parameters (its keys win)",
    )


def _project_promotion_params(env: str | None) -> dict[str, Any]:
    """The ``promotion`` parameters of the project, ``conf/base`` soft-merged with ``conf/<env>``.

    ``env`` None means ``$KEDRO_ENV``, else ``local``; a missing ``conf/local`` is skipped (it
    is git-ignored), any other missing environment is an error. The loader is the project's one
    parameter loader (:func:`sensorops.config_validation.load_project_parameters`), with the
    settings ``settings.py`` gives ``kedro run``.
    """
    from sensorops.config_validation import ConfigError, load_project_parameters

    conf = _project_path(DEFAULT_CONF)
    explicit = env is not None or bool(os.environ.get("KEDRO_ENV"))
    env = env or os.environ.get("KEDRO_ENV") or DEFAULT_ENV
    if not (conf / BASE_ENV).is_dir():
        if explicit:
            raise RegistryConfigError(f"--env {env}: {conf / BASE_ENV} does not exist")
        logger.info("no %s; using the default promotion parameters", conf / BASE_ENV)
        return {}
    envs = sorted(d.name for d in conf.iterdir() if d.is_dir() and d.name != BASE_ENV)
    if env == BASE_ENV or not (conf / env).is_dir():
        if env != BASE_ENV and explicit:
            raise RegistryConfigError(
                f"--env must be one of {[BASE_ENV, *envs]} (folders of {conf}); got {env!r}"
            )
        env = BASE_ENV  # only conf/base: the loader then reads it once
    try:
        params = load_project_parameters(conf, env)
    except ConfigError as exc:
        raise RegistryConfigError(str(exc)) from exc
    promotion = params.get("promotion", {})
    if not isinstance(promotion, dict):
        raise RegistryConfigError(
            f"'promotion' in {conf}/{{{BASE_ENV},{env}}}/parameters*.yml must be a mapping"
        )
    return dict(promotion)


def _config(
    params_path: str | None,
    margin: float | None,
    target: str | None = None,
    env: str | None = None,
) -> Any:
    """:class:`PromotionConfig` from the project parameters (base + ``env``), then ``--params``,
    then ``--margin-points``."""
    import yaml

    from sensorops.config_validation import deep_merge
    from sensorops.registry.config import PromotionConfig

    raw = _project_promotion_params(env)
    if params_path:
        path = Path(params_path)
        if not path.is_file():
            raise RegistryConfigError(f"--params {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict) or not isinstance(loaded.get("promotion", {}), dict):
            raise RegistryConfigError(
                f"--params {path} must hold a mapping under the key 'promotion'"
            )
        raw = deep_merge(raw, loaded.get("promotion", {}))
    if margin is not None:
        key = "production_margin_points" if target == "production" else "staging_margin_points"
        raw["gates"] = {**raw.get("gates", {}), key: margin}
    return PromotionConfig.from_params(raw)


def _add(node: Tree, text: str) -> Tree:
    """Add a plain-text child (no rich markup: stages like ``[production]`` stay literal)."""
    return node.add(Text(text))


def _table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row.get(c, "-")) for c in columns))
    return table


def _cmd_list(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.doctor import diagnose
    from sensorops.registry.inspect import list_models, list_versions

    if args.name:
        rows = list_versions(reg, args.name)
        _, found = diagnose(reg, args.name)
        problems = [
            f"{p.message} (fix: {p.fix}; run `sensorops models doctor {args.name} --fix`)"
            for p in found
        ]
        if args.json:
            out.print_json(json.dumps({"versions": rows, "problems": problems}))
            return EXIT_OK
        cols = [
            "version",
            "variant",
            "stage",
            "legacy_stage",
            "aliases",
            "test_accuracy",
            "test_macro_f1",
            "kedro_run_id",
        ]
        out.print(_table(f"{args.name} ({reg.uri})", rows, cols))
        for p in problems:
            out.print(f"warning: {p}", style="yellow", markup=False)
        return EXIT_OK
    rows = list_models(reg)
    for row in rows:  # artifacts are checked by `list NAME` and `doctor`, not for every model
        row["problems"] = len(diagnose(reg, row["name"], check_artifacts=False)[1])
    if args.json:
        out.print_json(json.dumps(rows))
    elif not rows:
        out.print(f"no registered models at {reg.uri}")
    else:
        cols = ["name", "production", "staging", "aliases", "problems"]
        out.print(_table(f"registered models ({reg.uri})", rows, cols))
        for row in rows:
            if row["problems"]:
                out.print(
                    f"warning: {row['name']} has {row['problems']} problem(s); see "
                    f"`sensorops models doctor {row['name']}`",
                    style="yellow",
                    markup=False,
                )
    return EXIT_OK


def _cmd_show(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.inspect import ModelRef, describe_version

    info = describe_version(reg, ModelRef.parse(args.ref))
    if args.json:
        out.print_json(json.dumps(info, default=str))
        return EXIT_OK
    v, lin = info["version"], info["lineage"]
    aliases = " ".join(v["aliases"]) or "no aliases"
    title = f"{info['name']} v{v['version']} [{v['stage']}] {aliases} (legacy stage {v['legacy_stage']})"
    tree = Tree(Text(title, style="bold"))
    _add(tree, f"variant {v['variant']}; source {v['source']}")
    if v["description"]:
        _add(tree, v["description"])
    run = lin["mlflow_run"]
    run_node = _add(
        tree,
        f"MLflow run {run['run_id']} ({run.get('run_name', '-')}, {run.get('status', '-')}, "
        f"experiment {run.get('experiment', '-')})",
    )
    kedro_node = _add(
        run_node, f"kedro run id {lin['kedro_run_id']}  command: {run.get('kedro_command', '-')}"
    )
    data_node = _add(kedro_node, "data")
    for key, value in info["data"].items():
        _add(data_node, f"{key}: {value}")
    for item in info["inputs"]:
        _add(
            data_node,
            f"mlflow.data input {item['name']} ({item['context']}) digest {item['digest']}",
        )
    dq_node = _add(kedro_node, "data quality")
    for key, value in info["dq"].items():
        _add(dq_node, f"{key}: {value}")
    child = lin["training_child_run"]
    _add(
        kedro_node,
        f"training child run {child['run_id']} ({child.get('run_name', '-')}, {child.get('status', '-')})",
    )
    _add(kedro_node, f"git commit {lin['git_commit']}; sensorops {lin['sensorops_version']}")
    parity_node = _add(tree, "parity")
    for key, value in info["parity"].items():
        _add(parity_node, f"{key}: {value}")
    metrics_node = _add(tree, "metrics")
    for key, value in {
        **info["metrics"],
        **{f"compression.{k}": v for k, v in info["compression"].items()},
    }.items():
        _add(metrics_node, f"{key}: {value}")
    if info["audit"]:
        audit_node = _add(tree, "last transition")
        for key, value in info["audit"].items():
            _add(audit_node, f"{key}: {value}")
    out.print(tree)
    return EXIT_OK


def _mi_loader(path: str) -> Any:
    def load() -> Any:
        from sensorops.model_input import ModelInputError, load_model_input

        try:
            return load_model_input(path)
        except ModelInputError as exc:
            raise RegistryConfigError(f"--model-input: {exc}") from exc

    return load


def _cmd_promote(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.transitions import promote

    cfg = _config(args.params, args.margin_points, args.target, args.env)
    model_input = args.model_input or str(_project_path(DEFAULT_MODEL_INPUT))
    result = promote(
        reg,
        args.name,
        args.version,
        args.target,
        config=cfg,
        mi=_mi_loader(model_input),
        reason=args.reason,
    )
    if args.json:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return EXIT_OK
    out.print(
        f"[green]promoted[/] {result.name} v{result.version}: {result.from_stage} -> {result.to_stage}"
        + (f" (archived {', '.join('v' + r for r in result.replaced)})" if result.replaced else "")
    )
    rows = [
        {"gate": r["gate"], "result": "pass" if r["passed"] else "FAIL", "detail": r["message"]}
        for r in result.gates["results"]
    ]
    out.print(_table("gates", rows, ["gate", "result", "detail"]))
    out.print(f"evidence run {result.evidence_run_id}; history event #{result.seq}")
    return EXIT_OK


def _cmd_rollback(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.transitions import rollback

    cfg = _config(args.params, None, env=args.env)
    result = rollback(reg, args.name, config=cfg, to_version=args.to_version, reason=args.reason)
    if args.json:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return EXIT_OK
    out.print(
        f"[green]rolled back[/] {result.name}: production is now v{result.version} "
        f"(was v{', v'.join(result.replaced) or '-'}); history event #{result.seq}"
    )
    return EXIT_OK


def _cmd_history(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.history import read_history

    events = read_history(reg, args.name)
    if args.json:
        out.print_json(json.dumps(events, default=str))
        return EXIT_OK
    rows = [
        {
            **e,
            "version": f"v{e.get('version')}",
            "from": e.get("from") or "-",
            "replaced": ", ".join(f"v{r}" for r in e.get("replaced", [])) or "-",
        }
        for e in events
    ]
    cols = [
        "seq",
        "at",
        "kind",
        "version",
        "from",
        "to",
        "replaced",
        "by",
        "reason",
        "evidence_run_id",
    ]
    out.print(_table(f"history of {args.name}", rows, cols))
    return EXIT_OK


EXIT_PROBLEMS = 6
"""``models doctor``: inconsistencies remain (none fixed, or some need a person)."""


def _cmd_doctor(reg: Any, args: argparse.Namespace, out: Console) -> int:
    from sensorops.registry.doctor import doctor

    cfg = _config(args.params, None, env=args.env) if args.fix else None
    report = doctor(reg, args.name, fix=args.fix, config=cfg)
    if args.json:
        out.print_json(json.dumps(report.to_dict(), default=str))
        return EXIT_OK if not report.remaining else EXIT_PROBLEMS
    if not report.problems:
        out.print(f"[green]{args.name} is consistent[/]")
        return EXIT_OK
    rows = [{"check": p.check, "problem": p.message, "fix": p.fix} for p in report.problems]
    out.print(_table(f"{args.name}: {len(rows)} problem(s)", rows, ["check", "problem", "fix"]))
    if report.repaired:
        out.print(f"repaired: {report.repaired.detail}", markup=False)
    if not args.fix:
        out.print(
            f"run `sensorops models doctor {args.name} --fix` to apply the fixes", markup=False
        )
        return EXIT_PROBLEMS
    for p in report.remaining:
        out.print(f"still wrong: {p.message} ({p.fix})", style="yellow", markup=False)
    if not report.remaining:
        out.print(
            f"[green]fixed[/]; history event #{report.seq}" if report.seq else "[green]fixed[/]"
        )
    return EXIT_OK if not report.remaining else EXIT_PROBLEMS


COMMANDS = {
    "list": _cmd_list,
    "show": _cmd_show,
    "promote": _cmd_promote,
    "rollback": _cmd_rollback,
    "history": _cmd_history,
    "doctor": _cmd_doctor,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sensorops`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from sensorops.serving.cli import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["rollout"]:
        from sensorops.rollout.cli import main as rollout_main

        return rollout_main(argv[1:])
    args = _parser().parse_args(argv)  # argparse exits with 2 on usage errors
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    out = Console(soft_wrap=args.json, width=None if not args.json else 10_000)
    err = Console(stderr=True, soft_wrap=True)  # long messages stay on one greppable line
    # fail within seconds, not minutes, when the server dies mid-command (user settings win)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    if args.json:  # MLflow writes "View run ... at: URL" to stdout when a run ends
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from sensorops.registry.client import access_denied, connect, resolve_tracking_uri
    from sensorops.tracking import mask_secrets

    uri = resolve_tracking_uri(args.tracking_uri)
    # --json keeps stdout pure JSON also under `kedro models`, whose logging config sends the
    # sensorops INFO records to a console handler on stdout
    package_logger = logging.getLogger("sensorops")
    old_level = package_logger.level
    if args.json and not args.verbose:
        package_logger.setLevel(logging.WARNING)
    try:
        reg = connect(uri)
        return COMMANDS[args.command](reg, args, out)
    except RegistryError as exc:  # a 403 wrapped by the transition code is still a 403
        shown = access_denied(exc, uri, _action(args)) or exc
        err.print(f"error: {mask_secrets(str(shown))}", style="red", markup=False, highlight=False)
        return shown.exit_code
    except Exception as exc:  # the server died mid-command, or MLflow refused a request
        denied = access_denied(exc, uri, _action(args))
        if denied is not None:
            err.print(f"error: {denied}", style="red", markup=False, highlight=False)
            return denied.exit_code
        if _looks_unreachable(exc):
            err.print(
                f"error: MLflow at {uri} stopped answering: {mask_secrets(str(exc))}; start it "
                "with `make mlflow-server`",
                style="red",
                markup=False,
            )
            return EXIT_UNREACHABLE
        raise
    finally:
        package_logger.setLevel(old_level)


def _action(args: argparse.Namespace) -> str:
    """What the command tried, for a permission message (``promote sensorops-classifier v3``)."""
    target = getattr(args, "name", None) or getattr(args, "ref", None) or "the registry"
    version = getattr(args, "version", None)
    return f"{args.command} {target}" + (f" v{version}" if version else "")


def _looks_unreachable(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(
        w in text for w in ("connection refused", "max retries", "connectionerror", "timed out")
    )


@click.group(name="sensorops")
def cli() -> None:
    """sensorops project commands for the kedro CLI (Kedro loads ``sensorops.cli.cli``)."""


_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def passthrough(name: str, help_text: str) -> click.Command:
    """A ``kedro NAME ...`` command that hands its arguments, untouched, to ``sensorops NAME ...``
    (:func:`main`), so both spellings parse, validate and exit the same way."""

    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise SystemExit(main([name, *args]))

    command.__doc__ = help_text
    return cli.command(name=name, context_settings=_PASSTHROUGH, help=help_text)(command)


kedro_models = passthrough(
    "models",
    "MLflow model registry: list, show, promote, rollback, history, doctor (= `sensorops models`).",
)
kedro_serve = passthrough("serve", "Serve NAME@ALIAS on Ray Serve (= `sensorops serve`).")


kedro_rollout = passthrough(
    "rollout",
    "Progressive rollout: start, status, step, abort, run, replay (= `sensorops rollout`).",
)


if __name__ == "__main__":
    sys.exit(main())
