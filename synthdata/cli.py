"""The ``synthdata`` command line (typer).

Exit codes: 0 success, 2 bad input or configuration (one readable paragraph, no
traceback unless ``--debug``), 3 the export gate refused the synthetic data.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from synthdata.errors import GateFailed, SynthDataError
from synthdata.models.registry import available_generators

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fit generators, sample synthetic tables, evaluate and gate them.")
schema_app = typer.Typer(no_args_is_help=True, help="Infer and check schemas.")
app.add_typer(schema_app, name="schema")

EXIT_BAD_INPUT = 2
EXIT_GATE = 3
EXIT_INCONCLUSIVE = 4  # `synthdata audit`: the claim is above what the audit can detect

_state = {"debug": False}

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
Verbose = Annotated[int, typer.Option(
    "--verbose", "-v", count=True,
    help="Log to stderr: -v shows each training epoch's loss, -vv everything.")]


def _generator_name(value: str) -> str:
    """-g: a registered generator (checked when the command runs, so names given to
    ``synthdata.register`` count too); anything else is a usage error listing the choices."""
    from synthdata.errors import ConfigError
    from synthdata.models.registry import check_generator_name

    try:
        return check_generator_name(value)
    except ConfigError as err:
        raise typer.BadParameter(str(err)) from None


GeneratorOpt = Annotated[str, typer.Option(
    "--generator", "-g", callback=_generator_name,
    metavar="[" + "|".join(available_generators()) + "]",
    help="Generator: " + ", ".join(available_generators()) + ".")]
# output suffixes the sample command writes (anything else: exit 2 before sampling)
OUTPUT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _err(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # escaped: messages quote user text such as "km_max_distance[pbc]", not markup
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}", markup=True)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """Progress on stderr: rich bars on a terminal, plain lines with ETA when stderr is a
    pipe or a file; nothing with --quiet."""
    from synthdata._progress import progress_reporter

    with progress_reporter(None if quiet else "auto") as callback:
        yield callback


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (rich's live bars swap it while they run)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_log_handler: logging.Handler | None = None


def _configure_logging(verbose: int) -> None:
    """-v: synthdata's INFO messages and each epoch's training loss; -vv: DEBUG."""
    global _log_handler
    if verbose <= 0:
        return
    root = logging.getLogger("synthdata")
    if _log_handler is None:
        _log_handler = _StderrHandler()
        _log_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(_log_handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    logging.getLogger("synthdata.models").setLevel(logging.DEBUG)  # per-epoch losses


def _show_version(value: bool) -> None:
    if value:
        from synthdata._version import __version__

        typer.echo(f"synthdata {__version__}")
        raise typer.Exit()


@app.callback()
def _root(debug: Debug = False, verbose: Verbose = 0,
          version: Annotated[bool, typer.Option(
              "--version", callback=_show_version, is_eager=True,
              help="Print the installed version and exit.")] = False) -> None:
    _state["debug"] = debug
    _configure_logging(verbose)


@app.command()
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.")],
        output_dir: Annotated[Path | None, typer.Option("--output-dir", "-o",
                              help="Folder for the run directory (default: output.dir).")] = None,
        budget_file: Annotated[Path | None, typer.Option(
            "--budget-file", help="Per-dataset privacy budget file (JSON) that adds up DP "
                                  "runs on the same data; sets privacy.budget.file.")] = None,
        threads: Annotated[int | None, typer.Option(
            "--threads", min=1, help="Threads for torch/OpenMP/BLAS in fit and sample "
                                     "(default: the cores available to the process); sets "
                                     "threads.")] = None,
        quiet: Quiet = False, debug: Debug = False, verbose: Verbose = 0) -> None:
    """Run a pipeline: load, split, fit, sample, evaluate, gate, export."""
    _state["debug"] |= debug
    _configure_logging(verbose)
    from synthdata.pipeline.config import PipelineConfig
    from synthdata.pipeline.runner import run_pipeline

    # read once: a bad file stops here, and run_pipeline takes the parsed config
    config = PipelineConfig.from_yaml(pipeline)
    if budget_file is not None:
        from synthdata.pipeline.budget import with_budget_file

        config = with_budget_file(config, budget_file)
    warning = dp_generator_warning(config.generator.kind, config.privacy is not None)
    if warning:
        typer.echo(warning, err=True)
    if threads is not None:
        from synthdata.pipeline.config import with_threads

        config = with_threads(config, threads)
    with _progress(quiet) as progress:
        result = run_pipeline(config, output_dir=output_dir, progress=progress)
    if not quiet:
        for line in result.notes:  # e.g. what a FHIR read took in and skipped
            typer.echo(line, err=True)
        for text in _report_warnings(result.run_dir):  # what report.html's first screen says
            typer.echo(f"warning: {text}", err=True)
        m = result.metrics
        shown = {k: m.get(k) for k in ("shapes", "pair_trends", "detection_auc", "exact_copies",
                                       "dcr_share", "mia_auc") if m.get(k) is not None}
        typer.echo("metrics: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))
    if not result.judged:  # `gate: none`: the user's explicit choice; exit 0, never "passed"
        typer.echo(NOT_JUDGED_RUN, err=True)
        typer.echo(str(result.run_dir))
        return
    if not result.passed:
        failed = [r for r in result.gate if not r.get("passed") and r.get("decides", True)]
        for r in failed:
            typer.echo(f"gate: {r.get('metric')} failed: {r.get('reason')}", err=True)
        typer.echo(f"gate FAILED ({len(failed)} of {len(result.gate)} rule(s)): export refused; "
                   "report written, no synthetic data", err=True)
        typer.echo(str(result.run_dir))
        raise typer.Exit(EXIT_GATE)
    if not quiet:
        typer.echo(f"gate PASSED: all {len(result.gate)} rule(s) hold", err=True)
    typer.echo(str(result.run_dir))


# Measured (benchmarks/results/privacy_deep.md, flchain, ε = 3, 3 seeds): DP-SGD vae/ctgan
# stay near chance; the DP gmm with a declared schema is the one to use (privacy.md).
DP_DEEP_WARNING = ("warning: generator {kind!r} under privacy is near chance in our "
                   "benchmark (flchain, ε = 3: train-on-synthetic ROC AUC {tstr} against 0.83 "
                   "on real data; detection AUC ≥ 0.99); use generator: aim (0.82, detection "
                   "0.76) or gmm (0.77) under DP, with a declared schema (benchmarks/results/"
                   "privacy_marginal.md, privacy.md; docs/privacy.md, section 3)")
# ddpm: a 20-epoch DP-SGD run (the budget a benchmark could afford; issue 21's note)
_DP_DEEP_TSTR = {"vae": "0.44", "ctgan": "0.57", "ddpm": "0.65"}


def dp_generator_warning(kind: str, private: bool) -> str | None:
    """The warning line for a generator that is near chance under DP, else None."""
    if not private or kind not in _DP_DEEP_TSTR:
        return None
    return DP_DEEP_WARNING.format(kind=kind, tstr=_DP_DEEP_TSTR[kind])


NOT_JUDGED_RUN = ("NOT JUDGED: the pipeline says `gate: none`; the synthetic data was exported "
                  "without a verdict (remove the line to use the default gate)")
NOT_JUDGED_SAMPLE = ("NOT JUDGED: these synthetic rows were not checked by any gate; give "
                     "--gate default --real TRAIN.csv --holdout HOLDOUT.csv to judge them "
                     "before sharing")
GateOpt = Annotated[str | None, typer.Option(
    "--gate", help="Gate preset (default, share_outside, internal_augmentation) or a YAML "
                   "file of rules {metric: {max|min|equals: x}}; exit 3 when it fails.")]


def _report_warnings(run_dir: Path) -> list[str]:
    """The warnings of the run's report (``summary.warnings``), e.g. a leak column or a DP
    range that fell back; none when the report is missing or unreadable."""
    import json

    try:
        summary = json.loads((run_dir / "report.json").read_text()).get("summary") or {}
    except (OSError, ValueError, AttributeError):
        return []
    return [str(t) for t in summary.get("warnings") or []]


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@schema_app.command("infer")
def schema_infer(data: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
                 output: Annotated[Path, typer.Option("--output", "-o", help="Schema YAML to write.")],
                 name: Annotated[str | None, typer.Option(help="Table name.")] = None,
                 discover: Annotated[bool, typer.Option(
                     "--discover/--no-discover",
                     help="Propose constraints that hold on every row.")] = True,
                 dp: Annotated[bool, typer.Option(
                     "--dp", help="Draft the declared schema a DP run needs (precision, sign, "
                                  "nullability; no learned ranges or category lists). It is "
                                  "read from the data: review it before declaring it public.")
                 ] = False,
                 encoding: str = "utf-8", debug: Debug = False) -> None:
    """Propose a schema (and constraints, marked proposed) for DATA and write it as YAML."""
    _state["debug"] |= debug
    from synthdata.io.files import read_table
    from synthdata.schema import Schema

    df = read_table(data, encoding=encoding)
    if dp:
        import yaml

        from synthdata.io.files import atomic_write_text
        from synthdata.schema.public import DRAFT_HEADER, declared_dict, draft_declared_schema

        draft = draft_declared_schema(df, name=name or data.stem)
        atomic_write_text(output, DRAFT_HEADER + yaml.safe_dump(
            declared_dict(draft), sort_keys=False, allow_unicode=True))
        for note in draft.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo("DRAFT read from the private data (outside the DP guarantee): review every "
                   "value as public knowledge before using it as data.schema", err=True)
        typer.echo(str(output))
        return
    schema = Schema.infer(df, name=name or data.stem, discover_constraints=discover)
    schema.save(output)
    if schema.proposed_constraints:
        typer.echo(f"proposed {len(schema.proposed_constraints)} constraint(s) that hold on every "
                   "row (marked proposed: true); confirm them by removing that flag", err=True)
    for note in schema.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(str(output))


@schema_app.command("check")
def schema_check(data: Path, schema: Path, encoding: str = "utf-8", debug: Debug = False) -> None:
    """Validate DATA against a complete SCHEMA YAML."""
    _state["debug"] |= debug
    from synthdata.io.files import read_table
    from synthdata.schema import Schema

    Schema.load(schema).validate(read_table(data, encoding=encoding), where=str(data))
    typer.echo("ok")


def _parse_pairs(pairs: list[str] | None, what: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            from synthdata.errors import ConfigError

            raise ConfigError(f"{what} {pair!r} must look like name=value")
        out[key] = yaml.safe_load(value)
    return out


def _deid_options(unmarked: str, dates: str, patient_column: str | None,
                  reference_year: int | None) -> Any:
    """The de-identification options of ``fit`` as a DeidConfig (ConfigError when invalid)."""
    from synthdata.errors import ConfigError
    from synthdata.pipeline.config import DeidConfig

    try:
        return DeidConfig.model_validate({"unmarked": unmarked, "dates": dates,
                                          "patient_column": patient_column,
                                          "reference_year": reference_year})
    except ValueError as err:
        raise ConfigError(f"fit: invalid de-identification option: {err}") from None


@app.command()
def fit(data: Annotated[Path, typer.Argument(help="CSV or Parquet training table.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Model archive to write.")],
        generator: GeneratorOpt = "gmm",
        schema: Annotated[Path | None, typer.Option(help="Schema YAML (overrides inference).")] = None,
        seed: Annotated[int, typer.Option(min=0, help="Random seed (a non-negative integer).")] = 0,
        param: Annotated[list[str] | None, typer.Option("--param", "-p",
                         help="Generator parameter name=value (repeatable).")] = None,
        unmarked: Annotated[str, typer.Option(
            "--unmarked", help="Suspected identifiers the schema does not mark: 'error' (stop "
            "before fitting) or 'transform' (apply the Safe Harbor rule), as deid.unmarked.")
            ] = "error",
        dates: Annotated[str, typer.Option(help="Dates marked as identifiers: 'year' (Safe "
                                                "Harbor) or 'shift' (needs --patient-column).")
                         ] = "year",
        patient_column: Annotated[str | None, typer.Option(
            "--patient-column", help="Column identifying a patient (for --dates shift).")] = None,
        reference_year: Annotated[int | None, typer.Option(
            "--reference-year", help="Year for the ages-over-89 rule on birth dates (default: "
            "the latest year among the data's dates).")] = None,
        stream: Annotated[bool, typer.Option(
            "--stream", help="Read DATA (a Parquet file or a folder of Parquet files) in "
            "batches instead of loading it: for tables larger than memory (gmm, vae, ctgan, ddpm; "
            "the torch generators train on shuffled mini-batches for their epochs).")] = False,
        batch_rows: Annotated[int, typer.Option(
            "--batch-rows", min=1, help="Rows per batch with --stream.")] = 100_000,
        passes: Annotated[int, typer.Option(
            "--passes", min=1, help="gmm: EM passes over every row with --stream.")] = 20,
        shuffle_batches: Annotated[int, typer.Option(
            "--shuffle-batches", min=1, help="vae/ctgan/ddpm with --stream: read batches whose "
            "rows are shuffled together into mini-batches (memory: about this many times "
            "--batch-rows rows).")] = 4,
        ray_address: Annotated[str | None, typer.Option(
            "--ray-address", help="With --stream: read DATA through Ray Data on this Ray cluster "
            "('auto', 'ray://HOST:10001', or 'local'); vae/ctgan/ddpm train in this process."
            )] = None,
        quiet: Quiet = False, debug: Debug = False, verbose: Verbose = 0) -> None:
    """Fit a generator on DATA and save it.

    The same identifier check and Safe Harbor de-identification as ``synthdata run`` (its
    ``deid:`` block with the defaults) run before fitting: suspected identifiers the schema
    does not mark stop the command (exit 2) unless ``--unmarked transform``.

    ``--stream`` fits gmm, vae, ctgan or ddpm without loading DATA (see docs/scale.md): the schema is
    inferred from the first 10,000 rows unless ``--schema`` is given, and de-identification
    rules that would change columns are refused (de-identify the files first).
    """
    _state["debug"] |= debug
    _configure_logging(verbose)
    if ray_address is not None and not stream:
        from synthdata.errors import ConfigError

        raise ConfigError("fit: --ray-address needs --stream (the Ray path reads DATA in batches)")
    if stream:
        _fit_streaming(data, output, generator=generator, schema=schema, seed=seed, param=param,
                       unmarked=unmarked, dates=dates, patient_column=patient_column,
                       reference_year=reference_year, batch_rows=batch_rows, passes=passes,
                       shuffle_batches=shuffle_batches, ray_address=ray_address, quiet=quiet)
        return
    from synthdata.errors import ConfigError
    from synthdata.io.files import read_table
    from synthdata.models.registry import check_generator_params, make_generator
    from synthdata.pipeline.deid import deid_table
    from synthdata.schema.model import Schema, load_yaml

    kind = generator
    params = _parse_pairs(param, "--param")
    try:  # before the data is read
        check_generator_params(kind, params)
    except ConfigError as err:
        raise ConfigError(f"--param: {err}") from None

    deid = _deid_options(unmarked, dates, patient_column, reference_year)
    if deid.dates == "shift" and deid.patient_column is None:
        raise ConfigError("fit: --dates shift needs --patient-column (the column that identifies "
                          "a patient, so all of a patient's dates move together)")
    df = read_table(data)
    sch = Schema.infer(df, name=data.stem)
    if schema is not None:
        sch = sch.with_overrides(load_yaml(schema), where=str(schema))
    sch.validate(df, where=str(data))
    df, sch, section = deid_table(df, sch, deid, seed=seed, where=str(data))
    for action in section.get("actions", []):
        if action["rule"] != "keep":
            typer.echo(f"deid: {action['column']}: {action['identifier_type']} -> "
                       f"{action['rule']}", err=True)
    gen = make_generator(kind, sch, seed=seed, **params)
    gen._validate_params()  # a bad value (--param epochs=-1): exit 2 before training
    with _progress(quiet) as progress:
        gen.fit(df, progress=progress)
    gen.save(output)
    typer.echo(str(output))


STREAM_SCHEMA_ROWS = 10_000  # rows --stream infers the schema from (without --schema)


def _fit_streaming(data: Path, output: Path, *, generator: str, schema: Path | None, seed: int,
                   param: list[str] | None, unmarked: str, dates: str,
                   patient_column: str | None, reference_year: int | None, batch_rows: int,
                   passes: int, ray_address: str | None, quiet: bool,
                   shuffle_batches: int = 4) -> None:
    """``synthdata fit --stream``: a generator fitted batch by batch (locally or on Ray)."""
    from synthdata.errors import ConfigError
    from synthdata.models.registry import check_generator_params, make_generator
    from synthdata.models.streaming import STREAMING_GENERATORS, ParquetSource, fit_streaming
    from synthdata.pipeline.deid import deid_table
    from synthdata.schema.model import Schema, load_yaml

    if generator not in STREAMING_GENERATORS:
        raise ConfigError(f"fit --stream: generator {generator!r} cannot fit by streaming; "
                          f"use one of {', '.join(STREAMING_GENERATORS)}, or fit without "
                          "--stream")
    params = _parse_pairs(param, "--param")
    try:
        check_generator_params(generator, params)
    except ConfigError as err:
        raise ConfigError(f"--param: {err}") from None
    if data.is_file() and data.suffix.lower() != ".parquet":
        raise ConfigError(f"fit --stream: {data} is not Parquet; --stream reads a .parquet file "
                          "or a folder of them (convert the table, or fit without --stream)")
    source = ParquetSource(data, batch_rows=batch_rows)
    head = source.head(STREAM_SCHEMA_ROWS)
    sch = Schema.infer(head, name=data.stem)
    if schema is not None:
        sch = sch.with_overrides(load_yaml(schema), where=str(schema))
    deid = _deid_options(unmarked, dates, patient_column, reference_year)
    # the identifier check on the first rows: unmarked identifiers stop the fit
    _, _, section = deid_table(head, sch, deid, seed=seed, where=str(data))
    rules = [f"{a['column']}: {a['rule']}" for a in section.get("actions", [])
             if a["rule"] != "keep"]
    if rules:
        raise ConfigError(f"fit --stream: de-identification rules apply ({'; '.join(rules)}); a "
                          "streaming fit does not rewrite the files: de-identify them first, "
                          "or drop those columns")
    gen = make_generator(generator, sch, seed=seed, **params)
    with _progress(quiet) as progress:
        fit_streaming(gen, source, passes=passes, ray_address=ray_address,
                      shuffle_batches=shuffle_batches, progress=progress)
    gen.save(output)
    typer.echo(str(output))


@app.command()
def sample(model: Annotated[Path, typer.Argument(help="Model archive from `synthdata fit`.")],
           rows: Annotated[int, typer.Option("--rows", "-n", help="Rows to generate.")],
           output: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet to write.")],
           seed: Annotated[int | None, typer.Option(min=0, help="Random seed (a non-negative "
                                                    "integer).")] = None,
           condition: Annotated[list[str] | None, typer.Option(
               "--condition", "-c",
               help="Fix a discrete column, name=value, or bound a numeric one, "
                    "'age={min: 60, max: 70}' (repeatable).")] = None,
           gate: GateOpt = None,
           real: Annotated[Path | None, typer.Option(
               "--real", help="The real table the model was fitted on (needed by --gate).")] = None,
           holdout: Annotated[Path | None, typer.Option(
               help="Real rows the model did not see (the gate's leakage baselines).")] = None,
           target: str | None = None,
           report_dir: Annotated[Path | None, typer.Option(
               "--report-dir", help="Where --gate writes report.json/html (default: "
                                    "OUTPUT's folder / <OUTPUT stem>-report).")] = None,
           neutralize: Annotated[bool, typer.Option(
               "--neutralize-formulas/--keep-formulas",
               help="CSV: prefix text cells starting with = + - @ tab CR with ' so "
                    "spreadsheets do not run them.")] = True,
           chunk_rows: Annotated[int, typer.Option(
               "--chunk-rows", min=1, help="Rows drawn and written at a time (memory does not "
                                           "grow with --rows; part of the reproducibility "
                                           "recipe with --seed).")] = 100_000,
           quiet: Quiet = False, debug: Debug = False) -> None:
    """Draw ROWS synthetic rows from a saved model (NOT JUDGED unless --gate is given).

    With --gate the rows are evaluated against --real (and --holdout) and written only when
    the gate passes (exit 3 otherwise, report written). More than --chunk-rows rows are
    drawn and written chunk by chunk; --gate then judges the first chunk.
    """
    _state["debug"] |= debug
    from synthdata.errors import ConfigError
    from synthdata.io.files import write_table, write_table_chunks
    from synthdata.models.base import load_generator
    from synthdata.models.conditions import split_conditions
    from synthdata.pipeline.stream import sample_chunks

    # everything the options decide is checked before the model is loaded or rows drawn
    fmt = OUTPUT_SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--output {output}: unknown file type {output.suffix or '(none)'!r}; "
                          f"use one of {sorted(OUTPUT_SUFFIXES)}")
    if rows <= 0:
        raise ConfigError(f"--rows must be a positive integer (rows to generate), got {rows}")
    if gate is not None and real is None:
        raise ConfigError("--gate needs --real TRAIN.csv (the table the model was fitted on) "
                          "and, for the leakage rules, --holdout HOLDOUT.csv")
    gate_spec = _gate_spec(gate) if gate is not None else None
    conditions = _parse_pairs(condition, "--condition") or None
    gen = load_generator(model)
    split_conditions(gen.schema, conditions, where="--condition")
    if target is not None and target not in gen.schema:
        raise ConfigError(f"--target {target!r} is not a column of the model's schema; choose "
                          f"one of {gen.schema.names}")
    synth = gen.sample(min(rows, chunk_rows), conditions=conditions, seed=seed)

    def export() -> None:
        if rows <= len(synth):
            write_table(synth, output, fmt, neutralize=neutralize)
        else:
            write_table_chunks(sample_chunks(gen, rows, chunk_rows, seed=seed,
                                             conditions=conditions, first=synth),
                               output, fmt, neutralize=neutralize)

    if gate is None:
        export()
        typer.echo(NOT_JUDGED_SAMPLE, err=True)
        typer.echo(str(output))
        return
    assert real is not None  # --gate without --real was refused above
    folder = report_dir or output.with_name(f"{output.stem}-report")
    passed = _judge(real, synth, holdout, gen.schema, target, gate_spec, folder, quiet)
    if not passed:
        typer.echo(f"gate refused export; report in {folder}, {output} not written", err=True)
        raise typer.Exit(EXIT_GATE)
    export()
    typer.echo(str(output))


def _gate_spec(gate: str) -> Any:
    """A preset name, or the rules of a YAML file when ``gate`` names one."""
    path = Path(gate)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        from synthdata.schema.model import load_yaml

        if not path.is_file():
            from synthdata.errors import ConfigError

            raise ConfigError(f"--gate: rules file not found: {path}")
        spec = load_yaml(path)
        spec = spec.get("gate", spec) if isinstance(spec, dict) else spec
    else:
        spec = gate
    from synthdata.evaluate.gate import resolve_gate

    resolve_gate(spec, where="--gate")  # unknown preset or metric: exit 2 before any work
    return spec


def _judge(real: Path, synth: Any, holdout: Path | None, schema: Any, target: str | None,
           gate_spec: Any, folder: Path, quiet: bool) -> bool:
    """Evaluate ``synth`` against the real tables, apply the gate, write the report."""
    # not sd.evaluate: importing synthdata.evaluate.gate binds the subpackage to that name
    from synthdata.evaluate import check_gate, evaluate
    from synthdata.io.files import atomic_write_text, private_dir, read_table

    train = read_table(real)
    hold = read_table(holdout) if holdout is not None else None
    with _progress(quiet) as progress:
        report = evaluate(train, synth, holdout=hold, schema=schema, target=target,
                          progress=progress)
    verdict = check_gate(report, gate_spec)
    report.add_section("gate", verdict.to_dict())
    private_dir(folder)
    atomic_write_text(folder / "report.json", report.to_json())
    atomic_write_text(folder / "report.html", report.to_html())
    _echo_verdict(verdict)
    return verdict.passed or not verdict.judged


def _echo_verdict(verdict: Any) -> None:
    if not verdict.judged:
        typer.echo("NOT JUDGED: gate none; no rule was checked", err=True)
        return
    for r in verdict.results:
        if not r["passed"]:
            typer.echo(f"gate: {r['metric']} failed: {r['reason']}", err=True)
    n_failed = len(verdict.failures)
    typer.echo(f"gate {'PASSED' if verdict.passed else 'FAILED'}: {n_failed} of "
               f"{len(verdict.results)} rule(s) do not hold", err=True)


@app.command()
def evaluate(real: Annotated[Path, typer.Argument(help="Real training table.")],
             synthetic: Annotated[Path, typer.Argument(help="Synthetic table to grade.")],
             holdout: Annotated[Path | None, typer.Option(help="Real held-out table.")] = None,
             output_dir: Annotated[Path, typer.Option("--output-dir", "-o")] = Path("reports/evaluate"),
             target: str | None = None,
             schema: Annotated[Path | None, typer.Option(help="Schema YAML (overrides inference).")] = None,
             gate: GateOpt = None,
             quiet: Quiet = False, debug: Debug = False) -> None:
    """Grade a synthetic table made by any tool; writes report.json and report.html.

    With --gate PRESET the report carries the verdict and the exit code is 3 when it fails
    (as for `run`); without it the report says NOT JUDGED.
    """
    _state["debug"] |= debug
    from synthdata.io.files import atomic_write_text, private_dir, read_table
    from synthdata.schema.model import Schema, load_yaml

    gate_spec = _gate_spec(gate) if gate is not None else None
    from synthdata.schema.infer import check_frame

    train = read_table(real)
    synth = read_table(synthetic)
    hold = read_table(holdout) if holdout is not None else None
    for frame, path in ((synth, synthetic), (hold, holdout)):  # the real table: by inference
        if frame is not None:
            check_frame(frame, where=str(path))
    sch = Schema.infer(train, name=real.stem)
    if schema is not None:
        sch = sch.with_overrides(load_yaml(schema), where=str(schema))
    from synthdata.evaluate import check_gate
    from synthdata.evaluate import evaluate as evaluate_tables

    with _progress(quiet) as progress:
        report = evaluate_tables(train, synth, holdout=hold, schema=sch, target=target,
                                 progress=progress)
    verdict = None
    if gate_spec is not None:
        verdict = check_gate(report, gate_spec)
        report.add_section("gate", verdict.to_dict())
    private_dir(output_dir)
    atomic_write_text(output_dir / "report.json", report.to_json())
    atomic_write_text(output_dir / "report.html", report.to_html())
    if verdict is None:
        typer.echo("NOT JUDGED: no --gate given; the report is not a verdict", err=True)
    else:
        _echo_verdict(verdict)
    typer.echo(str(output_dir))
    if verdict is not None and verdict.judged and not verdict.passed:
        raise typer.Exit(EXIT_GATE)


# ---- per-dataset privacy budgets: `synthdata budget show|set|clear` --------------------------
budget_app = typer.Typer(no_args_is_help=True,
                         help="Inspect and manage per-dataset privacy budget files.")
app.add_typer(budget_app, name="budget")
BudgetFile = Annotated[Path, typer.Argument(help="Budget file (privacy.budget.file).")]


@budget_app.command("show")
def budget_show(file: BudgetFile,
                as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
                debug: Debug = False) -> None:
    """List every dataset's declared total, spent and remaining (ε, δ) and its runs."""
    _state["debug"] |= debug
    import json

    from synthdata.errors import ConfigError
    from synthdata.privacy.budget import BudgetStore

    if not file.is_file():
        raise ConfigError(f"budget file not found: {file}")
    statuses = BudgetStore(file).datasets()
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
        return
    typer.echo(f"{file}: {len(statuses)} dataset(s); runs add up by basic composition "
               "(sum of ε, sum of δ)")
    for s in statuses:
        typer.echo(f"dataset {s.dataset_key[:12]} ({s.label or 'no label'}): "
                   f"ε spent {_fmt(s.spent_epsilon)} of {s.total_epsilon:g} "
                   f"(remaining {_fmt(s.remaining_epsilon)}), δ spent {s.spent_delta:.3g} of "
                   f"{s.total_delta:g} (remaining {s.remaining_delta:.3g})")
        for r in s.runs:
            typer.echo(f"  {r['status']:<9} run {r['run']} {r.get('generator') or '?':<10} "
                       f"ε={r['epsilon']} δ={r['delta']:g} started {r.get('started')}")
        if s.reserved_epsilon:
            typer.echo("  (a 'reserved' run is in progress or died before committing: it stays "
                       "charged; `synthdata budget clear` removes one you know never read the "
                       "data)")


@budget_app.command("set")
def budget_set(file: BudgetFile,
               dataset: Annotated[str, typer.Argument(help="Dataset key (or its first 6+ "
                                                      "characters) from `budget show`.")],
               total_epsilon: Annotated[float, typer.Option("--total-epsilon")],
               total_delta: Annotated[float, typer.Option("--total-delta")],
               debug: Debug = False) -> None:
    """Change a dataset's declared total knowingly (spent runs stay counted)."""
    _state["debug"] |= debug
    from synthdata.privacy.budget import BudgetStore

    store = BudgetStore(file)
    s = store.declare(store.resolve_key(dataset), total_epsilon=total_epsilon,
                      total_delta=total_delta)
    typer.echo(f"dataset {s.dataset_key[:12]}: total ε={s.total_epsilon:g}, "
               f"δ={s.total_delta:g}; spent ε={_fmt(s.spent_epsilon)}, δ={s.spent_delta:.3g}")


@budget_app.command("clear")
def budget_clear(file: BudgetFile,
                 dataset: Annotated[str, typer.Argument(help="Dataset key (or 6+ characters).")],
                 run_id: Annotated[str, typer.Argument(help="Run id of a 'reserved' run.")],
                 debug: Debug = False) -> None:
    """Remove a stale reservation of a run that died before reading the data."""
    _state["debug"] |= debug
    from synthdata.privacy.budget import BudgetStore

    store = BudgetStore(file)
    store.clear(store.resolve_key(dataset), run_id)
    typer.echo(f"removed reservation {run_id}")


# ---- service: `synthdata serve` and `synthdata tokens create|list|revoke` --------------------------------
tokens_app = typer.Typer(no_args_is_help=True, help="Manage the service's API tokens.")
app.add_typer(tokens_app, name="tokens")

DataDir = Annotated[Path, typer.Option("--data-dir", help="Folder for the SQLite database, "
                                       "uploads and job runs (created when needed).")]
DbUrl = Annotated[str | None, typer.Option("--db", help="Database URL, e.g. sqlite:///path.db "
                                           "or postgresql://user:pass@host/db (psycopg 3: "
                                           "the postgres extra) (default: SQLite in "
                                           "--data-dir).")]


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          db: DbUrl = None, data_dir: DataDir = Path("synthdata-data"),
          max_upload_mb: Annotated[float, typer.Option("--max-upload-mb",
                                   help="Largest accepted upload.")] = 100.0,
          workers: Annotated[int, typer.Option(help="Job processes (or Ray tasks) at once.")] = 2,
          tenant_jobs: Annotated[int, typer.Option("--tenant-jobs",
                                 help="Running jobs per tenant at once.")] = 1,
          max_columns: Annotated[int, typer.Option("--max-columns",
                                 help="Most columns an upload may have.")] = 500,
          ray_address: Annotated[str | None, typer.Option("--ray-address",
                                 envvar="SYNTHDATA_RAY_ADDRESS",
                                 help="Run jobs as Ray tasks on this cluster.")] = None,
          idle_workers: Annotated[bool, typer.Option(
              "--idle-workers/--no-idle-workers",
              help="Run job processes under SCHED_IDLE (Linux) as well as nice 10, so "
                   "requests always get the CPU first; only on a machine the service has "
                   "to itself: beside other busy programs the jobs starve.")] = False,
          budget_epsilon: Annotated[float, typer.Option(
              "--budget-epsilon", help="Privacy budget of a dataset whose upload declares "
                                       "none: total ε of all its DP jobs.")] = 10.0,
          budget_delta: Annotated[float, typer.Option(
              "--budget-delta", help="Default total δ of a dataset's DP jobs.")] = 1e-4,
          limit: Annotated[list[str] | None, typer.Option(
              "--limit", help="Set a limit or quota, KEY=VALUE (repeatable), e.g. "
                              "max_sample_rows=200000, job_time_limit_s=1800, "
                              "quota_jobs_per_hour=30, worker_threads=2; see GET /v1/limits "
                              "and docs/service.md.")] = None,
          docs: Annotated[bool, typer.Option("--docs/--no-docs", help="Serve /docs and /redoc "
                                             "(Swagger UI loads from a CDN).")] = False,
          ssl_certfile: Annotated[Path | None, typer.Option("--ssl-certfile")] = None,
          ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile")] = None,
          debug: Debug = False) -> None:
    """Run the HTTP service (FastAPI on uvicorn); jobs run in worker processes or on Ray."""
    _state["debug"] |= debug
    from synthdata.errors import ConfigError

    try:
        import uvicorn
    except ImportError as err:
        raise ConfigError("the service needs uvicorn; install the extra: "
                          "pip install 'synthdata[service]'") from err
    from synthdata.service import ServiceSettings, create_app

    if workers < 0 or tenant_jobs < 1 or max_upload_mb <= 0 or max_columns < 1:
        raise ConfigError("--workers must be >= 0, --tenant-jobs and --max-columns >= 1, "
                          "--max-upload-mb > 0")
    if not (0 < budget_epsilon < float("inf") and 0 < budget_delta < 1):
        raise ConfigError("--budget-epsilon must be a finite number > 0 and --budget-delta "
                          "in (0, 1)")
    from synthdata.io.files import private_dir

    private_dir(data_dir)  # uploads, runs and the database: readable by this user only
    settings = ServiceSettings(data_dir=data_dir, db_url=db, max_upload_mb=max_upload_mb,
                               workers=workers, tenant_jobs=tenant_jobs,
                               max_columns=max_columns, ray_address=ray_address or None,
                               worker_idle=idle_workers, budget_epsilon=budget_epsilon,
                               budget_delta=budget_delta, docs=docs,
                               **_service_limits(limit or []))
    if not _is_loopback(host) and ssl_certfile is None:
        typer.secho(f"WARNING: serving plain HTTP on {host}: tokens and data cross the network "
                    "unencrypted. Put a TLS proxy in front (docs/service.md) and bind "
                    "127.0.0.1, or pass --ssl-certfile/--ssl-keyfile.", fg="yellow", err=True)
    tls: dict[str, Any] = {} if ssl_certfile is None else {"ssl_certfile": str(ssl_certfile),
                                           "ssl_keyfile": str(ssl_keyfile) if ssl_keyfile else None}
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", **tls)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service_limits(pairs: list[str]) -> dict[str, Any]:
    """``--limit KEY=VALUE`` pairs as ServiceSettings fields, typed like their defaults."""
    import dataclasses

    from synthdata.errors import ConfigError
    from synthdata.service.settings import LIMIT_FIELDS, ServiceSettings

    defaults = {f.name: f.default for f in dataclasses.fields(ServiceSettings)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in LIMIT_FIELDS:
            raise ConfigError(f"--limit {pair!r}: use KEY=VALUE with KEY one of "
                              f"{', '.join(LIMIT_FIELDS)}")
        kind: type[Any] = type(defaults[key]) if defaults[key] is not None else int
        try:
            out[key] = (value.strip().lower() in ("1", "true", "yes")) if kind is bool \
                else kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ConfigError(f"--limit {key}: {value!r} is not a {kind.__name__}") from None
        if not isinstance(out[key], bool) and out[key] < 0:
            raise ConfigError(f"--limit {key}: must be >= 0")
    return out


def _open_store(db: str | None, data_dir: Path) -> Any:
    from synthdata.service.settings import default_db_url, private_sqlite_file
    from synthdata.service.store import Store

    if db is None:
        from synthdata.io.files import private_dir

        private_dir(data_dir)
        private_sqlite_file(default_db_url(data_dir))
    store = Store(db or default_db_url(data_dir))
    store.create_all()
    return store


def _expiry(text: str | None) -> float | None:
    """``30d``, ``12h``, ``90m`` from now, or an ISO date/time (UTC when no zone)."""
    import re as _re
    import time as _time
    from datetime import datetime, timezone

    from synthdata.errors import ConfigError

    if text is None:
        return None
    m = _re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", text)
    if m:
        return _time.time() + float(m.group(1)) * {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--expires: {text!r} is neither a duration (30d, 12h, 90m) nor an "
                          "ISO date (2027-01-31)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


@tokens_app.command("create")
def tokens_create(tenant: Annotated[str, typer.Option("--tenant", help="Tenant name.")],
                  scopes: Annotated[str, typer.Option(
                      "--scopes", help="Comma-separated: read (datasets, jobs, reports), "
                                       "submit (upload, jobs), download (synthetic rows), "
                                       "admin (budgets, tokens).")] = "read,submit,download,admin",
                  expires: Annotated[str | None, typer.Option(
                      "--expires", help="Lifetime (30d, 12h, 90m) or an ISO date; default: "
                                        "never.")] = None,
                  label: Annotated[str | None, typer.Option("--label", help="A note.")] = None,
                  db: DbUrl = None, data_dir: DataDir = Path("synthdata-data"),
                  debug: Debug = False) -> None:
    """Create an API token for TENANT (the tenant too, if new); the last line is the token."""
    _state["debug"] |= debug
    store = _open_store(db, data_dir)
    try:
        token = store.create_token(tenant, scopes=scopes.split(","), expires_at=_expiry(expires),
                                   label=label)
    finally:
        store.dispose()
    typer.echo(f"token for tenant {tenant.strip()!r} (shown once; only its hash is stored):",
               err=True)
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(tenant: Annotated[str | None, typer.Option("--tenant", help="Only this "
                                                           "tenant's tokens.")] = None,
                db: DbUrl = None, data_dir: DataDir = Path("synthdata-data"),
                debug: Debug = False) -> None:
    """List tokens (never their secrets): id, tenant, scopes, expiry, last use, revocation."""
    from datetime import datetime, timezone

    _state["debug"] |= debug
    store = _open_store(db, data_dir)
    try:
        rows = store.list_tokens(tenant)
    finally:
        store.dispose()

    def when(ts: float | None) -> str:
        return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime(
            "%Y-%m-%d %H:%M")

    typer.echo(f"{'id':16}  {'tenant':16}  {'scopes':26}  {'created':16}  {'expires':16}  "
               f"{'last used':16}  revoked")
    for r in rows:
        typer.echo(f"{r['id']:16}  {r['tenant'][:16]:16}  {','.join(r['scopes']):26}  "
                   f"{when(r['created_at']):16}  {when(r['expires_at']):16}  "
                   f"{when(r['last_used_at']):16}  {when(r['revoked_at'])}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(
                      help="The token's id (the part after 'sdt_', or the whole token).")],
                  db: DbUrl = None, data_dir: DataDir = Path("synthdata-data"),
                  debug: Debug = False) -> None:
    """Revoke a token; a running server refuses it within one second."""
    from synthdata.errors import ConfigError

    _state["debug"] |= debug
    if token_id.startswith("sdt_"):
        token_id = token_id.split("_")[1]
    store = _open_store(db, data_dir)
    try:
        revoked = store.revoke_token(token_id)
    finally:
        store.dispose()
    if not revoked:
        raise ConfigError(f"no active token with id {token_id!r}; see: synthdata tokens list")
    typer.echo(f"revoked token {token_id}")


@app.command()
def audit(data: Annotated[Path, typer.Argument(help="CSV or Parquet table to audit on.")],
          epsilon: Annotated[float, typer.Option("--epsilon", "-e", help="Claimed ε to audit.")],
          generator: GeneratorOpt = "gmm",
          delta: Annotated[float | None, typer.Option(help="Claimed δ (default: from the "
                                                      "row count).")] = None,
          trials: Annotated[int | None, typer.Option(
              "--trials", help="Fits (half choose the threshold, half give the bound); "
                               "default: sized to the claim.")] = None,
          max_trials: Annotated[int, typer.Option(
              "--max-trials", help="Most fits when sizing the trials to the claim.")] = 200,
          canaries: Annotated[int | None, typer.Option(
              "--canaries", help="Canary rows per fit (default: two per numeric column, at "
                                 "most 16).")] = None,
          seed: Annotated[int, typer.Option(min=0, help="Random seed (a non-negative integer).")] = 0,
          schema: Annotated[Path | None, typer.Option(help="Schema YAML (overrides "
                                                      "inference; must admit the canaries).")] = None,
          param: Annotated[list[str] | None, typer.Option("--param", "-p",
                           help="Generator parameter name=value (repeatable).")] = None,
          output: Annotated[Path | None, typer.Option("--output", "-o",
                            help="Write the full audit result as JSON.")] = None,
          quiet: Quiet = False, debug: Debug = False) -> None:
    """Audit a DP claim with canaries: PASS (exit 0), FAIL (exit 3) or INCONCLUSIVE (exit 4).

    INCONCLUSIVE: the claimed ε is above the largest ε this many trials can detect; the
    message says how many trials would be needed.
    """
    _state["debug"] |= debug
    import json

    from synthdata.io.files import atomic_write_text, read_table
    from synthdata.privacy.audit import audit_generator
    from synthdata.privacy.config import DPConfig
    from synthdata.schema.model import Schema, load_yaml

    df = read_table(data)
    sch = None
    if schema is not None:
        sch = Schema.infer(df, name=data.stem).with_overrides(load_yaml(schema),
                                                                 where=str(schema))
    from pydantic import ValidationError

    try:
        claim = DPConfig(epsilon=epsilon, delta=delta)
    except ValidationError as err:
        from synthdata.errors import ConfigError

        raise ConfigError(f"--epsilon/--delta: {err.errors()[0]['msg']}") from None
    with _progress(quiet) as progress:
        result = audit_generator(generator, sch, df, privacy=claim, n_canaries=canaries,
                                 n_trials=trials, max_trials=max_trials,
                                 params=_parse_pairs(param, "--param"), seed=seed,
                                 progress=progress)
    if output is not None:
        atomic_write_text(output, json.dumps(result.to_dict(), indent=2))
    d = result.details
    typer.echo(f"design:              {d['n_trials']} trials x {d['n_canaries']} canaries"
               f"{' (sized to the claim)' if d['trials_sized_to_claim'] else ''}")
    if d.get("fitted"):
        typer.echo(f"epsilon lower bound: {result.epsilon_lower_bound:.4f} "
                   f"(confidence {result.confidence:.0%})")
    typer.echo(f"claimed epsilon:     {result.claimed_epsilon:g} (delta {d['delta']:g})")
    typer.echo(f"largest detectable:  {result.detectable_epsilon:.4f}")
    typer.echo(result.summary())
    if result.verdict == "FAIL":  # GateFailed: main() turns it into exit code 3 (EXIT_GATE)
        raise GateFailed(f"privacy audit: the empirical lower bound ε >= "
                         f"{result.epsilon_lower_bound:.3g} exceeds the claimed "
                         f"ε = {result.claimed_epsilon:g}", failures=["epsilon_lower_bound"])
    if result.verdict == "INCONCLUSIVE":
        raise typer.Exit(EXIT_INCONCLUSIVE)


fhir_app = typer.Typer(no_args_is_help=True, help="Inspect FHIR R4 input.")
app.add_typer(fhir_app, name="fhir")


@fhir_app.command("read")
def fhir_read(path: Annotated[Path, typer.Argument(help="FHIR JSON/NDJSON file or folder.")],
              as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
              debug: Debug = False) -> None:
    """Read FHIR resources and print what was read, de-duplicated and skipped (and why)."""
    _state["debug"] |= debug
    import json

    from synthdata.io.fhir import read_fhir_summary

    _, summary = read_fhir_summary(path)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=1))
        return
    for line in summary.lines():
        typer.echo(line)


def main(argv: list[str] | None = None) -> int:
    """Entry point: turn our errors into one red paragraph and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # without standalone mode, typer returns the code of `raise typer.Exit(code)`
        code = app(args=argv, standalone_mode=False)
    except GateFailed as err:
        if debug or _state["debug"]:
            raise
        _err(str(err))
        return EXIT_GATE
    except SynthDataError as err:
        if debug or _state["debug"]:
            raise
        _err(str(err))
        return EXIT_BAD_INPUT
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):
        _err("aborted")
        return 130
    except Exception as exc:
        # usage errors (bad option, missing argument) know how to show themselves
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return EXIT_BAD_INPUT
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
