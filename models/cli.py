"""CLI of the models component: ``train``, ``evaluate``, ``score`` and the ``models`` group.

Top-level imports stay light (no TensorFlow) so ``dnsentinel --help`` is instant.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dnsentinel.verdict_cache.vocabulary import FLAGGED_LABELS, LABELS

console = Console()
err = Console(stderr=True)

BlockFpr = Annotated[
    float | None,
    typer.Option(min=0.0, max=0.1, help="Share of the calibration benign names allowed to be blocked (default 0.0005)."),
]
UncertainShare = Annotated[
    float | None,
    typer.Option(min=0.0, max=0.5, help="Share of them allowed into the vetting queue (default 0.015)."),
]

models_app = typer.Typer(help="The model registry: list, inspect, promote, roll back, export.", no_args_is_help=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def train(
    arch: Annotated[str, typer.Option(help="Architecture: charcnn (default) or mlbridge-cnn.")] = "charcnn",
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs (early stopping may end sooner).")] = 8,
    batch_size: Annotated[int, typer.Option(min=1)] = 512,
    sample_size: Annotated[int, typer.Option(min=100, help="Balanced training sample size.")] = 560_000,
    holdout: Annotated[
        str,
        typer.Option(help="DGA families held out for the unseen-family report: comma list, 'default' or 'none'."),
    ] = "default",
    include_vetted: Annotated[bool, typer.Option(help="Add analysts' vetted decisions as labels.")] = False,
    name: Annotated[str | None, typer.Option(help="Version name (default: <arch>-<UTC time>).")] = None,
    seed: Annotated[int, typer.Option()] = 7,
    patience: Annotated[int, typer.Option(min=1, help="Early-stopping patience in epochs.")] = 2,
    promote: Annotated[str, typer.Option(help="always | never | if-none (when no model is current).")] = "if-none",
    data_dir: Annotated[Path | None, typer.Option(help="Corpus directory (default: models/data).")] = None,
    block_fpr: BlockFpr = None,
    uncertain_share: UncertainShare = None,
) -> None:
    """Train a model into a new registry version.

    Example: [cyan]dnsentinel train --arch charcnn --epochs 8 --sample-size 400000[/]
    """
    from dnsentinel.models import architectures, training

    training.tf_log_quiet()
    architectures.get(arch)
    if promote not in ("always", "never", "if-none"):
        raise typer.BadParameter("--promote must be always, never or if-none")
    from dnsentinel.models import dataset

    held = dataset.DEFAULT_HOLDOUT
    if holdout != "default":
        held = tuple(family for family in holdout.split(",") if family and family != "none")
    config = training.TrainConfig(
        holdout=held,
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        sample_size=sample_size,
        include_vetted=include_vetted,
        name=name,
        seed=seed,
        patience=patience,
        promote=promote,
        data_dir=data_dir,
        block_fpr=training.TrainConfig.block_fpr if block_fpr is None else block_fpr,
        uncertain_share=training.TrainConfig.uncertain_share if uncertain_share is None else uncertain_share,
    )
    with _progress() as progress:
        task = progress.add_task("preparing", total=None)

        def on_batch(epoch: int, batch: int, steps: int) -> None:
            progress.update(task, description=f"epoch {epoch + 1}/{epochs}", completed=batch, total=steps)

        path = training.train(config, on_batch=on_batch, log=lambda msg: progress.console.print(msg))
    _print_summary(path)


def _print_summary(path: Path, done: str = "trained") -> None:
    from dnsentinel.models import registry

    manifest = registry.read_json(path / registry.MANIFEST)
    current = registry.current_version(path.parent) == manifest["version"]
    console.print(f"[bold green]{done}[/] {manifest['version']} ({manifest['arch']}) -> {path}")
    t = manifest["thresholds"]
    console.print(f"thresholds: block={t['block']:.6f} allow={t['allow']:.6f}; current: {current}")
    for key, value in manifest.get("summary", {}).items():
        console.print(f"  {key}: {value if value is None else round(value, 5)}")


def evaluate(
    model: Annotated[str, typer.Argument(help="Version name, model directory, or 'current'.")],
    data: Annotated[Path, typer.Option(help="Labelled CSV: domain,label[,kind,family] or a corpus file.")],
    output: Annotated[Path | None, typer.Option(help="Write the full JSON report here.")] = None,
) -> None:
    """Score a labelled CSV and report AUC, TPR at low FPR, confusion matrices, per-family recall.

    Example: [cyan]dnsentinel evaluate current --data labelled.csv[/]
    """
    from dnsentinel.models import load, training

    training.tf_log_quiet()
    loaded = load(model)
    report = training.evaluate_file(loaded, data)
    if output:
        output.write_text(json.dumps(report, indent=1))
    _print_report(report)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def _print_report(report: dict) -> None:
    table = Table(title=f"{report['version']} ({report['arch']}) on {report.get('data', '')}")
    for col in ("slice", "n pos", "n neg", "ROC AUC", "TPR@1e-3", "TPR@1e-4", "recall@block", "FPR@block"):
        table.add_column(col)
    rows = [("all", report["overall"])] + list(report.get("slices", {}).items())
    for name, s in rows:
        table.add_row(
            name,
            str(s["n_pos"]),
            str(s["n_neg"]),
            _fmt(s["roc_auc"]),
            _fmt(s["tpr_at_fpr_1e-3"]),
            _fmt(s["tpr_at_fpr_1e-4"]),
            _fmt(s["at_block"]["recall"]),
            _fmt(s["at_block"]["fpr"]),
        )
    console.print(table)
    (tn, fp), (fn, tp) = report["overall"]["at_block"]["confusion"]
    console.print(f"confusion at block: tn={tn} fp={fp} fn={fn} tp={tp}")
    if report.get("decisions"):
        decisions = Table(title="what the product decides, per kind (share of names)")
        for col in ("kind", "n", *LABELS):
            decisions.add_column(col)
        for kind, row in report["decisions"].items():
            decisions.add_row(kind, f"{row['n']:,}", *[f"{row[label]:.2%}" for label in LABELS])
        console.print(decisions)


def _read_names(path: Path) -> list[str]:
    """Names from a text file (one a line), a CSV (``domain`` column, else the first) or JSONL (``domain``)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".jsonl":
        names = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                names.append(str(json.loads(line).get("domain", "")))
            except (json.JSONDecodeError, AttributeError):
                err.print(f"[yellow]warning:[/] {path}:{number}: not a JSON object with 'domain'; scored as ''")
                names.append("")
        return names
    if path.suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        column = header.index("domain") if "domain" in header else 0
        body = rows[1:] if "domain" in header else rows
        return [row[column] if len(row) > column else "" for row in body]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _write_results(path: Path | None, rows: list[dict]) -> None:
    fields = ["domain", "score", "label", "reason", "family", "family_p", "model"]
    if path is None:
        for row in rows:
            fam = f"  family={row['family']} ({row['family_p']:.2f})" if row["family"] else ""
            line = f"{row['score']:.6f}  {row['label']:<9}  {row['domain']}  ({row['reason']})"
            line += f" model={row['model']}{fam}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if path.suffix == ".jsonl":
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        elif path.suffix == ".csv":
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(f"{row['score']:.6f}\t{row['label']}\t{row['reason']}\t{row['domain']}\t{row['model']}\n")


def score(
    domains: Annotated[list[str] | None, typer.Argument(help="Names to score.")] = None,
    input: Annotated[Path | None, typer.Option("--input", "-i", help="File of names: .txt, .csv or .jsonl.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write .txt, .csv or .jsonl.")] = None,
    model: Annotated[str | None, typer.Option(help="Version or model directory (default: current).")] = None,
    explain: Annotated[bool, typer.Option(help="Print a short explanation per name.")] = False,
) -> None:
    """Decide names offline exactly as a worker does (without vetted lists): score, label, reason, family.

    Labels: malicious / uncertain / benign, or unscored for what is not a public DNS name.
    Reasons: model (calibrated score vs thresholds), prior (popular registrable domain),
    unscored:<why>.

    Examples: [cyan]dnsentinel score google.com xjwqkqzpl.biz[/],
    [cyan]dnsentinel score --input names.txt --output scores.csv[/]
    """
    from dnsentinel.models import load, training
    from dnsentinel.models.detector import Detector

    training.tf_log_quiet()
    names = list(domains or [])
    if input is not None:
        if not input.is_file():
            raise typer.BadParameter(f"{input}: no such file", param_hint="--input")
        names += _read_names(input)
    if not names:
        raise typer.BadParameter("give names as arguments or --input FILE")
    detector = Detector.of(load(model))
    rows: list[dict] = []
    step = 50_000
    with _progress() as progress:
        task = progress.add_task("scoring", total=len(names))
        for start in range(0, len(names), step):
            chunk = names[start : start + step]
            decided = detector.decide(chunk)
            suspicious = [i for i, label in enumerate(decided.labels) if label in FLAGGED_LABELS]
            families = dict(zip(suspicious, detector.predict_family([decided.names[i] for i in suspicious])))
            for i, name in enumerate(chunk):
                fam, p = families.get(i, (None, 0.0))
                rows.append(
                    {
                        "domain": name,
                        "score": round(float(decided.scores[i]), 6),
                        "label": decided.labels[i],
                        "reason": decided.reasons[i],
                        "family": fam,
                        "family_p": round(p, 4) if fam else None,
                        "model": detector.version,
                    }
                )
            progress.update(task, advance=len(chunk))
    _write_results(output, rows)
    if explain:
        for name in names[:100]:
            console.print(detector.model.explain(name), markup=False, highlight=False, soft_wrap=True)
    if output is not None:
        err.print(f"wrote {len(rows)} decisions to {output} (model {detector.version})")


@models_app.command("list")
def list_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registry versions (* marks the current one)."""
    from dnsentinel.models import registry

    rows = registry.list_models()
    if json_out:
        print(json.dumps(rows, indent=1))
        return
    sh = registry.shared()
    table = Table(title=str(registry.registry_dir()) + (f" + shared: {sh.versions_index}" if sh else ""))
    for col in ("", "version", "arch", "created", "state", "test AUC", "DGA TPR@1e-3", "unseen AUC"):
        table.add_column(col)
    for row in rows:
        s = row["summary"] or {}
        table.add_row(
            "*" if row["current"] else "",
            row["version"],
            row["arch"] or "?",
            row["created"] or "",
            row["state"],
            _fmt(s.get("test_auc")),
            _fmt(s.get("dga_tpr@1e-3")),
            _fmt(s.get("unseen_auc")),
        )
    console.print(table)


@models_app.command()
def show(
    version: Annotated[str, typer.Argument(help="Version name (default: current).")] = "current",
    full: Annotated[bool, typer.Option(help="Print the whole metrics.json too.")] = False,
) -> None:
    """Show a model's manifest (arch, params, thresholds, data hash) and test-split report."""
    from dnsentinel.models import registry

    path = registry.resolve(version)
    manifest = registry.read_json(path / registry.MANIFEST)
    print(json.dumps(manifest, indent=1))
    metrics_path = path / registry.METRICS
    if metrics_path.is_file():
        report = registry.read_json(metrics_path)
        if full:
            print(json.dumps(report, indent=1))
        elif "test" in report.get("splits", {}):
            test = report["splits"]["test"]
            _print_report({**test, "version": manifest["version"], "arch": manifest["arch"], "data": "test split"})


@models_app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version to make current.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even if it is worse on the quality gate.")] = False,
) -> None:
    """Make a version current (workers hot-reload it), unless the quality gate says it decides worse.

    The gate compares what both versions decide per slice (models/gate.py); a measure more
    than 0.5 points worse refuses the promotion and says by how much.
    Example: [cyan]dnsentinel models promote charcnn-20261201-all[/]
    """
    from dnsentinel.models import gate, training

    training.tf_log_quiet()
    previous = gate.promote(version, force=force)
    console.print(f"current: {version} (was {previous})")


@models_app.command("gate")
def gate_cmd(
    versions: Annotated[list[str] | None, typer.Argument(help="Versions (default: current).")] = None,
) -> None:
    """Print the quality-gate measures (decision shares per slice) of one or more versions."""
    from dnsentinel.models import gate, registry, training

    training.tf_log_quiet()
    names = versions or [registry.current_version() or "current"]
    results = {v: gate.measure_version(v) for v in names}
    table = Table(title="quality gate: share of names per slice")
    table.add_column("measure")
    for v in names:
        table.add_column(v)
    for m in gate.MEASURES:
        table.add_row(m.key + (" (higher is better)" if m.higher_is_better else ""),
                      *[f"{results[v][m.key]:.2%}" for v in names])
    console.print(table)


@models_app.command()
def publish(
    version: Annotated[str, typer.Argument(help="A version of the local registry folder.")],
) -> None:
    """Upload a version to the shared registry (model.registry_backend = elasticsearch), checksummed.

    Workers on every host can then load it; `promote` makes it current (and publishes first when needed).
    Example: [cyan]DNSENTINEL_MODEL__REGISTRY_BACKEND=elasticsearch dnsentinel models publish charcnn-20261201-all[/]
    """
    from dnsentinel.models import registry

    done = registry.publish(version)
    console.print(f"{version}: {'published' if done else 'already published (same files)'}")


@models_app.command()
def rollback() -> None:
    """Make the previously current version current again."""
    from dnsentinel.models import registry

    target = registry.rollback()
    console.print(f"current: {target}")


@models_app.command()
def compare(
    versions: Annotated[list[str], typer.Argument(help="Versions to compare, slice by slice.")],
) -> None:
    """Print Markdown tables comparing versions on every test slice and the held-out families."""
    from dnsentinel.models import report

    print(report.compare_markdown(versions))
    print()
    print(report.family_markdown(versions[0]))


@models_app.command()
def reevaluate(
    version: Annotated[str, typer.Argument(help="Version to evaluate again.")],
    external: Annotated[
        list[Path] | None,
        typer.Option(help="Labelled CSV never trained on (evaluate's layout); repeatable. Adds operating-point rows."),
    ] = None,
    block_fpr: BlockFpr = None,
    uncertain_share: UncertainShare = None,
) -> None:
    """Evaluate a version again on the splits it was trained with: prior, calibration, thresholds, metrics.json.

    With --block-fpr / --uncertain-share the version's thresholds are chosen again at that budget.
    Example: [cyan]dnsentinel models reevaluate charcnn-20261201-all --external other_ranking.csv[/]
    """
    from dnsentinel.models import training

    training.tf_log_quiet()
    path = training.reevaluate(
        version, external=external, block_fpr=block_fpr, uncertain_share=uncertain_share
    )
    _print_summary(path, done="evaluated again")


@models_app.command()
def export(
    version: Annotated[str, typer.Argument(help="Version (default: current).")] = "current",
    dest: Annotated[Path, typer.Option(help="Output directory (SavedModel) or .onnx file.")] = Path("export"),
    onnx: Annotated[bool, typer.Option("--onnx", help="Write ONNX (needs the extra: pip install -e '.[onnx]').")] = False,
) -> None:
    """Export the scoring function as a TensorFlow SavedModel (input: encoded names) or ONNX.

    The output is the calibrated score; ONNX scores equal the model's within 1e-5.

    Example: [cyan]dnsentinel models export current --onnx --dest model.onnx[/]
    """
    from dnsentinel.models import serving, training

    training.tf_log_quiet()
    out = serving.export(None if version == "current" else version, dest, onnx=onnx)
    console.print(f"exported to {out}")


def register(app: typer.Typer) -> None:
    """Add this component's commands to the ``dnsentinel`` CLI."""
    app.command()(train)
    app.command()(evaluate)
    app.command()(score)
    app.add_typer(models_app, name="models")

