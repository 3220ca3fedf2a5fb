"""The Markdown summary of a continuous-training run, read back from the registry.

Everything in it was recorded on the model version by the steps that ran (the champion record,
the gate's decision, the checks, a promotion), so the summary can be written after any step,
also after one that failed: ``churn job-summary`` in the workflow's last step, appended to
``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mlflow import MlflowClient

from churn.champion import ChampionInfo, ChampionRecordError
from churn.data.versioning import data_tag_name
from churn.release import registry
from churn.release.registry import RecordedDecision


@dataclass(frozen=True)
class JobSummary:
    """The facts the summary shows about one version.

    Attributes:
        model_name: the registered model.
        recorded: what the gate, the checks and a promotion wrote on the version.
        record: the champion record (None when the version was registered by hand).
        champion_now: the version ``champion`` points at now (None: no champion).
        run_id: the MLflow run that trained the version.
        run_url: a link to that run in the MLflow UI (None for a local store).
        image_digest: the image released while it was champion, if one was recorded.
    """

    model_name: str
    recorded: RecordedDecision
    record: ChampionInfo | None
    champion_now: str | None
    run_id: str | None
    run_url: str | None = None
    image_digest: str | None = None

    @property
    def version(self) -> str:
        return self.recorded.version

    @property
    def headline(self) -> str:
        """What happened, in one line."""
        r = self.recorded
        name = f"{self.model_name} v{self.version}"
        kept = f"champion unchanged ({_v(self.champion_now)})"
        if self.champion_now == self.version:
            forced = f", forced by {r.forced_by}" if r.forced_by else ""
            return f"{name} is champion{forced}"
        if not r.gate_approved:
            return f"{name} refused by the gate: {kept}"
        if r.checks_passed is False:
            return f"{name} approved by the gate, its checks failed: {kept}"
        if r.checks_passed is None:
            return f"{name} approved, awaiting checks: {kept}"
        return f"{name} approved and checked, not promoted yet: {kept}"


def _v(version: str | None) -> str:
    return "none" if version is None else f"v{version}"


# MLflow 3's UI shows an experiment's pages in its GenAI view unless the address asks for the
# classic one (the machine-learning workflow: runs, metrics, models): every run link does.
CLASSIC_VIEW = "workflowType=machine_learning"


def run_page(base: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI's page of a run, in the classic view, on the UI at ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{CLASSIC_VIEW}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI's page of a run on a tracking server; None for a local store.

    Credentials in the URI (``https://user:pass@host``) are left out of the link.
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return run_page(base, experiment_id, run_id)


def read_summary(client: MlflowClient, name: str, version: str, tracking_uri: str) -> JobSummary:
    """The summary's facts for one version, from the registry and the tracking store.

    Raises:
        LookupError: when the version does not exist.
    """
    mv = registry.model_version(client, name, version)
    try:
        record: ChampionInfo | None = ChampionInfo.from_version(mv)
    except ChampionRecordError:
        record = None
    champion = registry.current_champion(client, name)
    run_id = None if mv.run_id is None else str(mv.run_id)
    url = None
    if run_id:
        try:
            experiment = client.get_run(run_id).info.experiment_id
            url = run_link(tracking_uri, str(experiment), run_id)
        except Exception:  # a summary without the link beats no summary
            url = None
    return JobSummary(
        model_name=name,
        recorded=RecordedDecision.from_version(mv),
        record=record,
        champion_now=None if champion is None else str(champion.version),
        run_id=run_id,
        run_url=url,
        image_digest=(mv.tags or {}).get(registry.IMAGE_DIGEST_TAG),
    )


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_markdown(summary: JobSummary) -> str:
    """The summary as GitHub-flavoured Markdown (a job summary, a pull-request comment)."""
    r = summary.recorded
    rec = summary.record
    challenger_auc = (
        r.challenger_roc_auc
        if r.challenger_roc_auc is not None
        else (rec.test_roc_auc if rec else None)
    )
    baseline_auc = (
        r.baseline_roc_auc
        if r.baseline_roc_auc is not None
        else (rec.baseline_test_roc_auc if rec else None)
    )
    if r.champion_version:
        champion_row = (
            f"| champion v{r.champion_version} (when the gate decided) | "
            f"{_auc(r.champion_roc_auc)} |"
        )
    else:
        champion_row = "| champion | none when the gate decided (a first model) |"
    if r.decision == registry.PENDING:
        gate = "none recorded"
    else:
        gate = "approved" if r.gate_approved else "rejected"
    lines = [
        f"## {summary.headline}",
        "",
        f"**Gate decision:** {gate}" + (f" ({r.decided_at})" if r.decided_at else ""),
        "",
        f"**Reason:** {r.reason or 'no decision recorded'}",
        "",
        "| model | test ROC AUC (same test split) |",
        "|---|---|",
        f"| challenger v{summary.version} | {_auc(challenger_auc)} |",
        champion_row,
        f"| baseline (logistic regression) | {_auc(baseline_auc)} |",
        f"| fallback rules (served when the model cannot) | "
        f"{_auc(rec.rules_test_roc_auc if rec else None)} |",
        "",
    ]
    if r.checks is None:
        lines += ["**Checks:** not run", ""]
    else:
        verdict = "passed" if r.checks_passed else "FAILED"
        lines += [
            f"**Checks:** {verdict}" + (f" ({r.checked_at})" if r.checked_at else ""),
            "",
            "| check | result | detail |",
            "|---|---|---|",
            *(
                f"| {_cell(c.name)} | {'pass' if c.passed else 'FAIL'} | {_cell(c.detail)} |"
                for c in r.checks
            ),
            "",
        ]
    if r.promoted_at:
        by = f" by {r.promoted_by}" if r.promoted_by else ""
        lines += [f"**Promoted** with `churn promote` at {r.promoted_at}{by}", ""]
    if r.forced_by:
        lines += [f"**Forced** by {r.forced_by}: {r.forced_reason}", ""]
    facts = [f"- champion now: {_v(summary.champion_now)}"]
    if rec is not None:
        facts += [
            f"- data version `{rec.data_version}` (git tag `{data_tag_name(rec.data_version)}`)",
            f"- code commit `{rec.git_commit}`",
            f"- trained at {rec.trained_at}; decision threshold {rec.decision_threshold:.4f}",
        ]
    if summary.run_id:
        run = (
            f"[`{summary.run_id}`]({summary.run_url})" if summary.run_url else f"`{summary.run_id}`"
        )
        facts.append(f"- MLflow run {run}")
    if summary.image_digest:
        facts.append(f"- image `{summary.image_digest}`")
    return "\n".join([*lines, *facts, ""])
