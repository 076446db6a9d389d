"""Champion / challenger: move the `champion` alias only to a version that passes every gate and
beats the current champion on the deployable metric; roll back to the previous champion.

Aliases: `challenger` (the newest registered version), `champion` (what serving loads:
``models:/<name>@champion``), `previous-champion` (what `rollback` restores). Each promotion also
writes ``promotion.previous_champion`` on the new champion, so repeated rollbacks walk the chain.
Every decision that acts is recorded on the versions involved (``promotion.*`` tags and a line
at the top of the version description). Nothing here uses the deprecated stages API.

What is compared: the int8 metric on the VAL split (the test split is reported, never compared).
Two versions are comparable only when they have the same class set (``data.class_map``: the class
names in order; a 7-class and an 8-class model are never ranked on one number), and carry the same
``data.fingerprint`` and the same
``split.val_digest`` (versions registered before the split record existed lack it: compared, with
a warning). When both versions stored their int8 val predictions, the decision is a paired
bootstrap on the shared val rows (`ferops.registry.evidence`): promote only when the lower bound of
the interval of the improvement clears the margin. Without stored predictions: the tag values,
with a warning.

Concurrency: the read-decide-write runs under the registry lock (`ferops.registry.lock`), so
concurrent callers (a DVC queue with auto-promotion) are serialised on one machine. The writes are
verified afterwards and the whole decision redone when another writer (one the lock does not
reach: another machine on the same tracking server) moved an alias in between.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ferops.registry import tags as T
from ferops.registry.config import Gates
from ferops.registry.evidence import Comparison, compare_versions
from ferops.registry.lock import registry_lock
from ferops.registry.register import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, client_uri, registry_client

log = logging.getLogger(__name__)

PROMOTE, REJECT, REFUSE, NOOP, ROLLBACK = "promote", "reject", "refuse", "noop", "rollback"
_DESCRIPTION_LIMIT = 4000
DEFAULT_RESAMPLES, DEFAULT_CONFIDENCE = 2000, 0.95  # = RegistryConfig's defaults


@dataclass
class Decision:
    """What `promote` / `rollback` decided and why. `applied` is False for dry runs and no-ops."""

    action: str  # promote | reject (lost or failed a gate) | refuse (not comparable) | noop | rollback
    reason: str
    name: str
    challenger: str | None = None
    champion: str | None = None  # champion before the decision
    new_champion: str | None = None  # champion after it (when applied)
    metric: str = T.INT8_MACRO_F1
    challenger_value: float | None = None
    champion_value: float | None = None
    margin: float = 0.0
    gate_failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # the paired bootstrap (Comparison.to_dict()) when the decision rests on it, else None
    comparison: dict | None = None
    compared: bool = False  # reached the comparison of the two versions' metric
    attempts: int = 1
    dry_run: bool = False
    applied: bool = False
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def promoted(self) -> bool:
        return self.action == PROMOTE

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        def v(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        head = f"{self.action.upper()}{' (dry run)' if self.dry_run else ''}: {self.name}"
        if self.action == ROLLBACK:
            return "\n".join([head, f"  champion:   {self.champion} -> {self.new_champion}", f"  reason:     {self.reason}"])
        lines = [
            head,
            f"  challenger: {self.challenger or '-'}  {self.metric}={v(self.challenger_value)}",
            f"  champion:   {self.champion or '-'}  {self.metric}={v(self.champion_value)}  (margin {self.margin})",
            f"  reason:     {self.reason}",
        ]
        if self.comparison:
            c = self.comparison
            lines.append(
                f"  interval:   {c['statistic']} challenger - champion {c['delta']:+.4f}, {c['confidence']:.0%} CI "
                f"[{c['low']:+.4f}, {c['high']:+.4f}] ({c['n']} val rows, {c['resamples']} paired resamples)"
            )
        lines += [f"  WARNING:    {w}" for w in self.warnings]
        if self.applied:
            lines.append(f"  champion is now version {self.new_champion}")
        return "\n".join(lines)


# -- gates -------------------------------------------------------------------------------------
def version_gate_failures(tags: dict[str, str], gates: Gates) -> list[str]:
    """The promotion gates a registered version (its tags) fails; empty when it passes them all."""
    failures: list[str] = []
    if gates.require_export_gates and T.tag_bool(tags, T.EXPORT_GATES) is not True:
        failures.append(f"export gates not passed ({T.EXPORT_GATES}={tags.get(T.EXPORT_GATES, 'missing')})")
    if gates.require_edgetpu_compatible and T.tag_bool(tags, T.EDGETPU_COMPATIBLE) is not True:
        failures.append(f"not EdgeTPU compatible ({T.EDGETPU_COMPATIBLE}={tags.get(T.EDGETPU_COMPATIBLE, 'missing')})")
    for key, bound, is_min in (
        (T.INT8_MACRO_F1, gates.min_int8_macro_f1, True),
        (T.INT8_ACC_DROP, gates.max_int8_acc_drop_points, False),
        (T.LATENCY_MS, gates.max_latency_ms, False),
    ):
        if bound is None:
            continue
        value = T.tag_float(tags, key)
        if value is None:
            failures.append(f"{key} missing (gate {'>=' if is_min else '<='} {bound})")
        elif (value < bound) if is_min else (value > bound):
            failures.append(f"{key}={value:g} {'<' if is_min else '>'} {bound:g}")
    return failures


check_gates = version_gate_failures  # old name (export.gates has its own); kept for callers


# -- helpers -----------------------------------------------------------------------------------
def _by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _record(
    client: MlflowClient, name: str, version: str, decision: Decision, outcome: str, reason: str, against: str | None
) -> None:
    client.set_model_version_tag(name, version, T.PROMOTION_DECISION, outcome)
    client.set_model_version_tag(name, version, T.PROMOTION_REASON, reason[:5000])
    client.set_model_version_tag(name, version, T.PROMOTION_TIME, decision.timestamp)
    client.set_model_version_tag(name, version, T.PROMOTION_AGAINST, against or "none")
    old = client.get_model_version(name, version).description or ""
    line = f"[{decision.timestamp}] {outcome}: {reason}"
    client.update_model_version(name, version, description=(line + "\n" + old)[:_DESCRIPTION_LIMIT])


# -- promote -----------------------------------------------------------------------------------
def decide(
    name: str,
    challenger: ModelVersion | None,
    champion: ModelVersion | None,
    margin: float,
    gates: Gates,
    metric: str = T.INT8_MACRO_F1,
    evidence: Comparison | None = None,
    no_evidence: str | None = None,
) -> Decision:
    """The decision alone (no registry access): pure function of the two versions' tags and, when
    given, the paired bootstrap of their val predictions (`evidence`; `no_evidence` says why there
    is none, and the tag values decide, with a warning)."""
    d = Decision(action=NOOP, reason="", name=name, margin=margin, metric=metric)
    if challenger is None:
        d.reason = f"no version has the alias '{CHALLENGER}'"
        return d
    ctags = dict(challenger.tags)
    d.challenger, d.challenger_value = str(challenger.version), T.tag_float(ctags, metric)
    if champion is not None:
        d.champion, d.champion_value = str(champion.version), T.tag_float(dict(champion.tags), metric)
    if d.champion == d.challenger:
        d.reason = f"version {d.challenger} is already the champion"
        return d
    d.gate_failures = version_gate_failures(ctags, gates)
    if d.gate_failures:
        d.action, d.reason = REJECT, "failed gates: " + "; ".join(d.gate_failures)
        return d
    if d.challenger_value is None:
        d.action, d.reason = REFUSE, f"challenger has no {metric}"
        return d
    if champion is None:
        d.action, d.reason = PROMOTE, f"first model to pass the gates ({metric}={d.challenger_value:.4f})"
        return d
    champ_tags = dict(champion.tags)
    classes_chal, classes_champ = ctags.get(T.DATA_CLASSES), champ_tags.get(T.DATA_CLASSES)
    if classes_chal and classes_champ and classes_chal != classes_champ:
        d.action = REFUSE
        d.reason = f"cannot compare: different class sets ({T.DATA_CLASSES} {classes_chal!r} vs champion {classes_champ!r})"
        return d
    vd_chal, vd_champ = ctags.get(T.SPLIT_VAL_DIGEST), champ_tags.get(T.SPLIT_VAL_DIGEST)
    if vd_chal and vd_champ and vd_chal != vd_champ:
        d.action = REFUSE
        d.reason = (
            f"cannot compare: validated on different val rows ({T.SPLIT_VAL_DIGEST} {vd_chal[:12]} vs {vd_champ[:12]}; "
            f"val sources {ctags.get(T.SPLIT_VAL_SOURCE, '?')!r} vs {champ_tags.get(T.SPLIT_VAL_SOURCE, '?')!r})"
        )
        return d
    fp_chal, fp_champ = ctags.get(T.DATA_FINGERPRINT), dict(champion.tags).get(T.DATA_FINGERPRINT)
    if not fp_chal or not fp_champ:
        d.action, d.reason = (
            REFUSE,
            f"cannot compare: {T.DATA_FINGERPRINT} missing on {'challenger' if not fp_chal else 'champion'}",
        )
        return d
    if fp_chal != fp_champ:
        d.action = REFUSE
        d.reason = f"cannot compare: evaluated on different data ({T.DATA_FINGERPRINT} {fp_chal[:12]} vs {fp_champ[:12]})"
        return d
    legacy = [
        f"{role} version {v.version}"
        for role, v, digest in (("challenger", challenger, vd_chal), ("champion", champion, vd_champ))
        if not digest
    ]
    if legacy:
        d.warnings.append(
            f"{' and '.join(legacy)} {'have' if len(legacy) > 1 else 'has'} no split record ({T.SPLIT_VAL_DIGEST}; registered before the val/test "
            f"rule, so its {metric} may be on test): compared anyway"
        )
    if d.champion_value is None:
        d.action, d.reason = REFUSE, f"champion has no {metric}"
        return d
    d.compared = True
    delta = d.challenger_value - d.champion_value
    values = f"{metric} {d.challenger_value:.4f} vs champion {d.champion_value:.4f}: {delta:+.4f}"
    if evidence is not None:
        d.comparison = evidence.to_dict()
        ci = f"{evidence.confidence:.0%} CI of the improvement [{evidence.low:+.4f}, {evidence.high:+.4f}] on {evidence.n} val rows"
        if evidence.low > 0 and evidence.low >= margin:
            d.action, d.reason = PROMOTE, f"{values}; {ci}: lower bound clears margin {margin}, wins"
        else:
            d.action, d.reason = (
                REJECT,
                f"{values}; {ci}: lower bound does not clear margin {margin} (not distinguishable from noise)",
            )
        return d
    if no_evidence:
        d.warnings.append(f"no paired bootstrap ({no_evidence}): decided on the tag values alone")
    if delta > 0 and delta >= margin:  # a tie never wins, whatever the margin
        d.action, d.reason = PROMOTE, f"{values}, wins (margin {margin})"
    else:
        d.action, d.reason = REJECT, f"{values}, needs > 0 and >= margin {margin}"
    return d


def _decide_with_evidence(
    client: MlflowClient,
    name: str,
    challenger: ModelVersion | None,
    champion: ModelVersion | None,
    margin: float,
    gates: Gates,
    metric: str,
    resamples: int,
    confidence: float,
) -> Decision:
    d = decide(name, challenger, champion, margin, gates, metric)
    if not d.compared:
        return d
    comparison, why_not = compare_versions(client, challenger, champion, metric, resamples, confidence)
    return decide(name, challenger, champion, margin, gates, metric, evidence=comparison, no_evidence=why_not)


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    mv = _by_alias(client, name, alias)
    return None if mv is None else str(mv.version)


def promote(
    name: str,
    margin: float = 0.0,
    gates: Gates | None = None,
    dry_run: bool = False,
    metric: str = T.INT8_MACRO_F1,
    client: MlflowClient | None = None,
    version: str | int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    retries: int = 5,
) -> Decision:
    """Compare the challenger (`version`, else the version with the alias `challenger`) with
    `champion` and, unless `dry_run`, act on and record the decision. Safe under concurrent callers
    (module docstring); `retries`: how often the decision is redone when a write is found overwritten."""
    client = client or registry_client()
    gates = gates or Gates()
    with registry_lock(client_uri(client), f"promote {name}"):
        for attempt in range(1, retries + 1):
            if version is not None:
                challenger = client.get_model_version(name, str(version))
            else:
                challenger = _by_alias(client, name, CHALLENGER)
            champion = _by_alias(client, name, CHAMPION)
            d = _decide_with_evidence(client, name, challenger, champion, margin, gates, metric, resamples, confidence)
            d.dry_run, d.attempts = dry_run, attempt
            for w in d.warnings:
                log.warning("promote %s: %s", name, w)
            if dry_run or d.action == NOOP:
                log.info("%s", d.summary())
                return d
            assert d.challenger is not None
            if _alias_version(client, name, CHAMPION) != d.champion:  # moved while we decided (another machine)
                log.warning("promote %s: champion moved during the decision; deciding again (attempt %d)", name, attempt)
                continue
            if d.promoted:
                if d.champion:
                    client.set_model_version_tag(name, d.challenger, T.PREVIOUS_CHAMPION, d.champion)
                    client.set_registered_model_alias(name, PREVIOUS_CHAMPION, d.champion)
                client.set_registered_model_alias(name, CHAMPION, d.challenger)
                d.new_champion = d.challenger
            else:
                d.new_champion = d.champion
            # verify: MLflow has no compare-and-set; a writer the lock does not reach may have raced us
            now_champ, now_prev = _alias_version(client, name, CHAMPION), _alias_version(client, name, PREVIOUS_CHAMPION)
            if now_champ != d.new_champion or (d.promoted and d.champion and now_prev != d.champion):
                log.warning(
                    "promote %s: aliases changed under us (champion %s, previous %s; expected %s, %s); deciding again",
                    name,
                    now_champ,
                    now_prev,
                    d.new_champion,
                    d.champion,
                )
                continue
            _record(client, name, d.challenger, d, d.action, d.reason, d.champion)
            if d.champion:
                outcome = "demoted" if d.promoted else "retained"
                _record(client, name, d.champion, d, outcome, f"challenger {d.challenger}: {d.reason}", d.challenger)
            d.applied = True
            log.info("%s", d.summary())
            return d
    d = Decision(
        action=REFUSE,
        name=name,
        margin=margin,
        metric=metric,
        challenger=None if version is None else str(version),
        reason=f"the aliases kept changing under concurrent writers ({retries} attempts); nothing recorded, run promote again",
    )
    log.warning("%s", d.summary())
    return d


def rollback(name: str, dry_run: bool = False, client: MlflowClient | None = None) -> Decision:
    """Move `champion` back to `previous-champion`; the version rolled back from loses `challenger`
    (so a later `promote` does not bring it straight back), and `previous-champion` steps one
    further back along the ``promotion.previous_champion`` chain (or is removed)."""
    client = client or registry_client()
    with registry_lock(client_uri(client), f"rollback {name}"):
        return _rollback(client, name, dry_run)


def _rollback(client: MlflowClient, name: str, dry_run: bool) -> Decision:
    current, previous = _by_alias(client, name, CHAMPION), _by_alias(client, name, PREVIOUS_CHAMPION)
    d = Decision(action=NOOP, reason="", name=name, dry_run=dry_run)
    if current is None:
        d.reason = f"no version has the alias '{CHAMPION}'"
        return d
    d.champion = str(current.version)
    d.champion_value = T.tag_float(dict(current.tags), d.metric)
    if previous is None or str(previous.version) == d.champion:
        d.reason = f"no previous champion to roll back to (alias '{PREVIOUS_CHAMPION}' not set)"
        return d
    d.action, d.new_champion = ROLLBACK, str(previous.version)
    d.reason = f"rolled back from version {d.champion} to version {d.new_champion}"
    if dry_run:
        return d
    client.set_registered_model_alias(name, CHAMPION, d.new_champion)
    before = dict(previous.tags).get(T.PREVIOUS_CHAMPION)
    if before and before not in (d.champion, d.new_champion):
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, before)
    else:
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    challenger = _by_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == d.champion:
        client.delete_registered_model_alias(name, CHALLENGER)
    _record(client, name, d.champion, d, "rolled_back", d.reason, d.new_champion)
    _record(client, name, d.new_champion, d, "restored", d.reason, d.champion)
    d.applied = True
    log.info("%s", d.summary())
    return d
