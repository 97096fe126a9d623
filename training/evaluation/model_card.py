"""The model card: the TRIPOD+AI items that apply to a dropout model, as markdown."""

from __future__ import annotations

from typing import Any

from dropout_risk.features.concepts import direction, model_groups
from dropout_risk.features.spec import FeatureSpec


def _number(value: Any) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _ci(metrics: dict[str, Any], name: str) -> str:
    lo, hi = metrics.get("ci", {}).get(name, [None, None])
    return f"{_number(metrics.get(name))} ({_number(lo)}-{_number(hi)})"


def _row(label: str, metrics: dict[str, Any]) -> str:
    if "not_applicable" in metrics:
        return f"| {label} | not applicable: {metrics['not_applicable']} | | | | | |"
    return (
        f"| {label} | {_ci(metrics, 'within_landmark_auc')} | {_ci(metrics, 'roc_auc')} | {_ci(metrics, 'pr_auc')} | "
        f"{_ci(metrics, 'brier')} | {_ci(metrics, 'calibration_slope')} | {_ci(metrics, 'ece')} |"
    )


def render_model_card(report: dict[str, Any], spec: FeatureSpec) -> str:
    """The model card of a training report, as markdown."""
    lines = [
        *_use_and_data(report, spec),
        *_predictors(spec, _landmarks_present(report, spec)),
        *_validation_design(report),
        *_performance(report),
        *_by_landmark(report),
        *_monotonicity(report),
        *_limits(),
    ]
    return "\n".join(lines) + "\n"


def _use_and_data(report: dict[str, Any], spec: FeatureSpec) -> list[str]:
    data = report["data"]
    instruments = ", ".join(f"{i.name} (`{i.key}`, {i.role})" for i in spec.instruments) or "none"
    return [
        f"# Model card: {report['model_name']} ({report['model_kind']})",
        "",
        "Reported following the TRIPOD+AI items that apply (Collins et al., BMJ 2024).",
        "",
        "## Intended use",
        "Estimate, after each attended psychotherapy session, the probability that the client's episode "
        "ends in dropout (unilateral, premature termination), to prompt the clinician to review alliance, "
        "goals and engagement with the client. It supports clinical judgement; it does not decide care, "
        "and it is not validated for populations unlike the training data below.",
        "",
        "## Data",
        f"- Source: sessions file digest `{data['sessions_digest']}`, episodes file digest "
        f"`{data['episodes_digest']}`.",
        f"- {data['clients']} clients with an ended episode ({data['ongoing_excluded']} ongoing episodes "
        f"excluded: their outcome is unknown), {data['sessions']} attended sessions, "
        f"first session dates {data['first_date']} to {data['last_date']}.",
        f"- Dropout in {data['dropout_rate']:.1%} of ended episodes.",
        f"- Instruments: {instruments}.",
        "",
        "## Outcome",
        "The episode's final status as recorded by the clinic: `dropout` = 1, `completed` = 0. Every landmark "
        "row of a client carries that client's final outcome.",
        "",
    ]


def _landmarks_present(report: dict[str, Any], spec: FeatureSpec) -> str:
    """The sessions k the evaluated rows reach, e.g. "1-5" (the spec allows up to max_landmark)."""
    keys = sorted(int(k) for k in report.get("test", {}).get("by_landmark", {}))
    if not keys:
        return f"1-{spec.max_landmark}"
    if keys == list(range(keys[0], keys[-1] + 1)):
        return f"{keys[0]}-{keys[-1]}" if len(keys) > 1 else str(keys[0])
    return ", ".join(map(str, keys))


def _predictors(spec: FeatureSpec, landmarks: str) -> list[str]:
    lines = [
        "## Predictors",
        f"One row per client and attended session k (sessions {landmarks} in these data; the features are "
        f"defined up to {spec.max_landmark}), computed only from sessions up to k (landmarking). Outcome "
        "scores are direction-normalised (higher = better) and compared with an expected-treatment-response "
        "curve fitted on the training clients.",
        "",
    ]
    signs = {1: " (+)", -1: " (-)", 0: ""}
    for group, columns in model_groups(spec).items():
        named = ", ".join(f"`{c}`{signs[direction(spec, c)]}" for c in columns) or "none"
        lines.append(f"- **{group}** ({len(columns)}): {named}")
    return [
        *lines,
        "- `landmark` (the session number k) is in every set, as a category in the logistic model.",
        "",
        "One feature per clinical concept; (+) raises the risk as it rises, (-) lowers it: the logistic model's "
        "coefficients are bounded to these signs and LightGBM is monotone in them, so a worse alliance, outcome "
        "or attendance never lowers the risk. The landmark table's other columns are quoted by the reasons "
        "and flags, not used by the model.",
        "",
        "## Missing data",
        "A score not given at a session is missing, never zero; features built from it are missing until a "
        "score exists. LightGBM routes missing values natively; the logistic model imputes the training median "
        "and adds a missing-value indicator. Missed appointments unknown = missing.",
        "",
    ]


def _monotonicity(report: dict[str, Any]) -> list[str]:
    checked = report.get("monotonicity")
    if not checked:
        return []
    lines = ["### A worse session never lowers the risk", "Share of held-out histories whose risk fell:"]
    for result in checked["perturbations"].values():
        lines.append(
            f"- {result['description']}: {result['rate']:.2%} of {result['histories']} "
            f"({result['rate_from_2']:.2%} from session 2)"
        )
    return [*lines, ""]


def _calibration(validation: dict[str, Any]) -> str:
    if validation["calibration"] != "sigmoid":
        return f"{validation['calibration']} (one curve for every session)"
    own = validation.get("calibration_landmarks", [])
    if not own:
        return "Platt scaling (one slope and one intercept: no session had enough dropouts and completers for its own)"
    shifts = validation.get("calibration_intercept_shifts", {})
    moved = ", ".join(f"{k} {v:+.2f}" for k, v in shifts.items())
    return (
        "Platt scaling with one slope for every session and an intercept of its own at session(s) "
        f"{', '.join(map(str, own))} (the others share the pooled intercept), each shrunk towards the pooled "
        f"one by as much as its difference is noise (log-odds from the pooled intercept: {moved or 'none'})"
    )


def _validation_design(report: dict[str, Any]) -> list[str]:
    test, selection, validation = report["test"], report["selection"], report["validation"]
    return [
        "## Validation design",
        f"- Held-out test set of {test['n_clients']} clients ({validation['split']} split by client), "
        "never used for fitting, selection or calibration.",
        f"- Model selection on {validation['folds']}-fold cross-validation grouped by client, on the "
        "within-session AUC: "
        + ", ".join(f"{k} {v:.3f}" for k, v in selection["cv_within_landmark_auc"].items())
        + f"; chosen: **{selection['chosen']}** ({selection['rule']}).",
        f"- Calibration: {_calibration(validation)}, fitted on out-of-fold predictions.",
        f"- 95% confidence intervals: client-clustered bootstrap ({validation['bootstrap_resamples']} "
        "resamples of clients).",
        "",
    ]


def _performance(report: dict[str, Any]) -> list[str]:
    test = report["test"]
    lines = [
        "## Performance on the test clients (95% CI)",
        "",
        "The within-session AUC (the mean of the ROC AUCs within each session) is the figure to read: the "
        "pooled AUC over all sessions is inflated by the session number, since later sessions hold fewer "
        "eventual dropouts (`landmark_only`, the dropout rate by session, shows how much).",
        "",
        "| model | within-session AUC | pooled AUC | PR AUC | Brier | calibration slope | ECE |",
        "|---|---|---|---|---|---|---|",
        _row(f"**{report['model_kind']}** (registered)", test),
    ]
    lines += [_row(name, metrics) for name, metrics in report["baselines"].items() if name != report["model_kind"]]
    excluded = [f"session {e['landmark']}: {e['reason']}" for e in test.get("excluded_landmarks", [])]
    if excluded:
        lines += ["", "Sessions left out of the within-session AUC: " + "; ".join(excluded) + "."]
    return [
        *lines,
        "",
        f"Calibration intercept {_ci(test, 'calibration_intercept')}. With the top 20% of rows flagged: "
        f"sensitivity {test['sensitivity_top20']:.3f}, precision {test['precision_top20']:.3f}. "
        f"Dropouts ever alerted (top-20% threshold): {test.get('alerted_share', float('nan')):.1%}, "
        f"median {test.get('median_lead_sessions', float('nan'))} sessions before their last attended one.",
        "",
    ]


def _by_landmark(report: dict[str, Any]) -> list[str]:
    lines = [
        "### By landmark session",
        "",
        "| session | clients | ROC AUC | Brier | calibration slope |",
        "|---|---|---|---|---|",
    ]
    for landmark, metrics in report["test"]["by_landmark"].items():
        lines.append(
            f"| {landmark} | {metrics['n_clients']} | {_ci(metrics, 'roc_auc')} | "
            f"{_ci(metrics, 'brier')} | {_ci(metrics, 'calibration_slope')} |"
        )
    if report.get("true_risk"):
        truth = report["true_risk"]
        lines += [
            "",
            f"Simulated data: the true risk reaches AUC {truth['roc_auc']:.3f} on the same rows; "
            f"model/true = {truth['ratio']:.3f}.",
        ]
    return lines


def _limits() -> list[str]:
    return [
        "",
        "## Limits",
        "- Trained on one clinic's (or cohort's) records; performance elsewhere must be checked before use "
        "(leave-one-clinic-out and temporal splits are available).",
        "- Small datasets give wide intervals: read the CIs, not the point estimates. Results are unstable "
        "below a few hundred clients (Zantvoort et al. 2024).",
        "- Subgroup performance (gender, age band, clinic) is in the report; groups with too few clients are "
        "not estimated.",
        "- The promotion gate's evaluation stores the held-out clients' records in the tracking store's "
        "artifacts: protect that store as health data.",
    ]
