"""Per-feature attributions of a model's scores (TreeSHAP), and their drift against the reference.

The attributions are the tree libraries' own TreeSHAP contributions (LightGBM's `pred_contrib`,
XGBoost's `pred_contribs`: path-dependent TreeSHAP, the values `shap.TreeExplainer` gives a tree
model): exact, additive (a row's contributions and the expected value sum to the model's raw
output), and fast enough for every row of a day. Two sources of a tree model:

- the model's own artefact, when the registry names one: a LightGBM text model, an XGBoost JSON
  model, or a scikit-learn tree ensemble saved with skops (parsed, never executed: skops builds only
  the types it is allowed to, and only scikit-learn's tree types are allowed beyond its defaults;
  pickled models are refused, since unpickling runs code), or an ONNX model (run by onnxruntime,
  which executes only the graph's standard operators; no custom-operator library is loaded). A
  scikit-learn model is explained by shap's TreeExplainer, LightGBM and XGBoost by their own library
  (all exact TreeSHAP); an ONNX graph is opaque, so it is explained model-agnostically by shap's
  PermutationExplainer (ONNX_PERMUTATIONS antithetic permutations against ONNX_BACKGROUND reference
  rows; additive exactly, each value an estimate) on at most ONNX_MAX_ROWS rows a day. It reads
  the declared features in order, numeric then categorical, a categorical feature as the code of its
  level among the reference's sorted levels. Its fidelity checks that the artefact is the model
  that served: its predictions against the logged scores.
- otherwise a surrogate: a LightGBM regressor trained on the reference's logged features to its
  logged scores. Its fidelity (R² against the real scores, on held-out reference rows and on every
  day) is reported beside the attributions and gates their use: below `min_fidelity` they explain
  the surrogate, not the model, and no drift is reported from them.

Drift of the explanations, per feature: the distribution of its attributions in the window against
the reference's (KS p-value and Wasserstein distance over the reference attributions' standard
deviation, as for the features themselves), and of the global ranking, nDCG of the window's mean
|attribution| ranking with the reference's mean |attribution| as relevance, SageMaker Clarify's
definition (it alarms below 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.monitoring.drift import as_levels, ks_wasserstein

MAX_MODEL_BYTES = 64 * 1024 * 1024  # a model file larger than this is refused before it is read
TRAIN_ROWS = 20_000
HOLDOUT_SHARE = 0.2
NDCG_ALARM = 0.9
_SURROGATE_PARAMS = {
    "objective": "regression",
    # 150 trees of 15 leaves: TreeSHAP costs trees x leaves x depth² per row; 300 trees of 31 leaves
    # took 20 s for 10,000 rows of 50 features on one core, for an R² 0.005 higher (benchmarks/attribution.py)
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "num_threads": 1,  # Dagster runs steps in parallel processes; reproducible too
    "deterministic": True,
    "force_row_wise": True,
    "seed": 0,
    "verbose": -1,
}
SURROGATE_ROUNDS = 150


@dataclass(frozen=True)
class FeatureCoding:
    """How the features enter the tree model: numeric as they are, categorical as codes of the
    reference's levels (a level the reference never had, or a missing value, is missing)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def from_reference(cls, reference: pd.DataFrame, numeric, categorical) -> FeatureCoding:
        levels = {c: tuple(sorted(as_levels(reference[c]).dropna().unique())) for c in categorical}
        return cls(tuple(numeric), tuple(categorical), levels)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise BadInputError(f"explanations: the window has no column(s) {', '.join(missing)}")
        columns = [frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in self.numeric]
        for column in self.categorical:
            codes = pd.Categorical(as_levels(frame[column]), categories=self.levels[column]).codes
            columns.append(np.where(codes < 0, np.nan, codes).astype(np.float64))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))


@dataclass
class Explainer:
    """A tree model, the coding of its inputs, and what its output means."""

    booster: object  # lightgbm.Booster, xgboost.Booster, a scikit-learn tree ensemble or an OnnxModel
    coding: FeatureCoding
    source: str  # "surrogate" or the artefact's path
    output: str  # "score" (a regression), "log-odds" (a classifier's raw margin) or "probability"
    holdout_fidelity: float | None = None

    def row_limit(self, max_rows: int) -> int:
        """Rows a day explained: fewer for an ONNX graph, whose model-agnostic attributions cost
        thousands of its evaluations a row."""
        return min(max_rows, ONNX_MAX_ROWS) if isinstance(self.booster, OnnxModel) else max_rows

    def to_text(self) -> str:
        return self.booster.model_to_string()

    def _raw_and_contributions(self, x: np.ndarray, contributions: bool):
        if isinstance(self.booster, OnnxModel):
            return self.booster.raw_and_contributions(x, contributions)
        if type(self.booster).__module__.startswith("sklearn"):
            return _sklearn_raw_and_contributions(self.booster, self.output, x, contributions)
        if type(self.booster).__module__.startswith("xgboost"):
            import xgboost as xgb

            matrix = xgb.DMatrix(x, missing=np.nan)
            raw = self.booster.predict(matrix, output_margin=True)
            return raw, (self.booster.predict(matrix, pred_contribs=True) if contributions else None)
        raw = self.booster.predict(x, raw_score=True)
        return raw, (self.booster.predict(x, pred_contrib=True) if contributions else None)

    def predicted_scores(self, x: np.ndarray) -> np.ndarray:
        raw, _ = self._raw_and_contributions(x, False)  # a probability output is the score itself
        return 1 / (1 + np.exp(-raw)) if self.output == "log-odds" else raw

    def attributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(contributions n x features, expected value per row, largest additivity error)."""
        raw, contributions = self._raw_and_contributions(x, True)
        contributions, raw = np.asarray(contributions, dtype=np.float64), np.asarray(raw, dtype=np.float64)
        values, expected = contributions[:, :-1], contributions[:, -1]
        error = float(np.max(np.abs(values.sum(axis=1) + expected - raw))) if len(raw) else 0.0
        return values, expected, error


def r_squared(actual: np.ndarray, predicted: np.ndarray) -> float | None:
    keep = ~np.isnan(actual)
    actual, predicted = actual[keep], predicted[keep]
    if len(actual) < 2 or np.var(actual) == 0:
        return None
    return float(1 - np.sum((actual - predicted) ** 2) / np.sum((actual - np.mean(actual)) ** 2))


def fit_surrogate(reference: pd.DataFrame, numeric, categorical, score_column: str = "score") -> Explainer:
    """A LightGBM regressor of the logged score on the logged features, on up to TRAIN_ROWS
    reference rows (fixed seed), its fidelity measured on held-out reference rows."""
    import lightgbm as lgb

    if score_column not in reference:
        raise BadInputError(f"explanations: the reference has no score column {score_column}")
    scored = reference[reference[score_column].notna()]
    if len(scored) < 100:
        raise BadInputError(f"explanations: {len(scored)} scored reference rows; a surrogate needs at least 100")
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(scored), size=min(TRAIN_ROWS, len(scored)), replace=False))
    sample = scored.iloc[rows]
    coding = FeatureCoding.from_reference(reference, numeric, categorical)
    x, y = coding.matrix(sample), sample[score_column].to_numpy(dtype=np.float64)
    held_out = rng.random(len(sample)) < HOLDOUT_SHARE
    categorical_at = list(range(len(coding.numeric), len(coding.features)))

    def train(keep: np.ndarray):
        data = lgb.Dataset(x[keep], y[keep], categorical_feature=categorical_at, free_raw_data=True)
        return lgb.train(_SURROGATE_PARAMS, data, num_boost_round=SURROGATE_ROUNDS)

    fidelity = r_squared(y[held_out], train(~held_out).predict(x[held_out]))
    return Explainer(train(np.ones(len(y), dtype=bool)), coding, "surrogate", "score", fidelity)


def _read_model_file(path: str) -> bytes:
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"explanations.model {path}: no such file")
    if file.stat().st_size > MAX_MODEL_BYTES:
        raise BadInputError(f"explanations.model {path}: larger than {MAX_MODEL_BYTES} bytes")
    return file.read_bytes()


def _lightgbm_model(path: str, payload: bytes):
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_str=payload.decode("utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise BadInputError(f"explanations.model {path}: not a readable LightGBM model: {exc}") from None
    objective = str(booster.dump_model().get("objective", ""))
    return booster, booster.num_feature(), objective.startswith(("binary", "cross_entropy"))


def _xgboost_model(path: str, payload: bytes):
    import json

    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(payload))
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except (xgb.core.XGBoostError, KeyError, ValueError) as exc:
        raise BadInputError(f"explanations.model {path}: not a readable XGBoost JSON model: {exc}") from None
    return booster, booster.num_features(), objective in ("binary:logistic", "binary:logitraw", "reg:logistic")


ONNX_MAX_ROWS = 1_000
ONNX_BACKGROUND = 100
ONNX_PERMUTATIONS = 3


class OnnxModel:
    """An ONNX graph with one float input of the declared features; its score is the favourable
    class's probability (a [n, 2] output), or its single output."""

    def __init__(self, path: str, payload: bytes, background: np.ndarray):
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types for a bad graph
            raise BadInputError(f"explanations.model {path}: not a readable ONNX model: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)":
            raise BadInputError(f"explanations.model {path}: the ONNX model must take one float tensor of the features")
        self.input, self.path = inputs[0].name, path
        self.features = inputs[0].shape[-1] if isinstance(inputs[0].shape[-1], int) else None
        self.background = background[np.isfinite(background).all(axis=1)][:ONNX_BACKGROUND]

    def score(self, x: np.ndarray) -> np.ndarray:
        for output in self.session.run(None, {self.input: np.asarray(x, dtype=np.float32)}):
            output = np.asarray(output)
            if output.dtype.kind == "f" and output.ndim == 2 and output.shape[1] == 2:
                return output[:, 1].astype(np.float64)
            if output.dtype.kind == "f" and (output.ndim == 1 or output.shape[-1] == 1):
                return output.reshape(len(x)).astype(np.float64)
        raise BadInputError(
            f"explanations.model {self.path}: no float output of one score or two class probabilities "
            "(convert a classifier with zipmap disabled)"
        )

    def raw_and_contributions(self, x: np.ndarray, contributions: bool):
        raw = self.score(x)
        if not contributions:
            return raw, None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            import shap

            explainer = shap.PermutationExplainer(self.score, shap.maskers.Independent(self.background), seed=0)
            found = explainer(x, max_evals=ONNX_PERMUTATIONS * (2 * x.shape[1] + 1), silent=True)
        return raw, np.column_stack([found.values, found.base_values])


# skops refuses any type it is not told to trust; these are the tree internals of scikit-learn's
# ensembles, nothing that can run code when it is built.
SKLEARN_TREE_TYPES = frozenset(
    {"sklearn.tree._tree.Tree", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"}
)


def _sklearn_raw(model, output: str, x: np.ndarray) -> np.ndarray:
    if output == "probability":
        return model.predict_proba(x)[:, 1]
    if output == "log-odds":
        return model.decision_function(x)
    return model.predict(x)


def _sklearn_raw_and_contributions(model, output: str, x: np.ndarray, contributions: bool):
    raw = _sklearn_raw(model, output, x)
    if not contributions:
        return raw, None
    import warnings

    with warnings.catch_warnings():
        # shap 0.46 (the newest for numpy 1) trips over numpy's and matplotlib's deprecations on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

        explainer = shap.TreeExplainer(model)
        values = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=np.float64)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 3:  # one set of values per class: the favourable class's
        values, expected = values[:, :, 1], expected[1:2]
    return raw, np.column_stack([values, np.full(len(values), expected[0])])


def _sklearn_model(path: str, payload: bytes, x: np.ndarray):
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(data=payload))
    except Exception as exc:  # noqa: BLE001 - skops reports a damaged file in many ways
        raise BadInputError(f"explanations.model {path}: not a readable skops file: {exc}") from None
    refused = sorted(untrusted - SKLEARN_TREE_TYPES)
    if refused:
        raise BadInputError(
            f"explanations.model {path}: the file holds types that are not trusted: {', '.join(refused)}"
        )
    model = sio.loads(payload, trusted=sorted(untrusted))
    features = getattr(model, "n_features_in_", None)
    if features is None:
        raise BadInputError(f"explanations.model {path}: {type(model).__name__} is not a fitted scikit-learn model")
    # What shap's TreeExplainer explains differs by ensemble (a forest's probability, a boosting's
    # margin): the output is the one its values add up to on the reference's rows.
    problem: Exception | str = "its values add up to none of its outputs"
    for output in ("probability", "log-odds", "score"):
        try:
            raw, contributions = _sklearn_raw_and_contributions(model, output, x[:200], True)
        except Exception as exc:  # noqa: BLE001 - not this output, or not a tree model shap can explain
            problem = exc
            continue
        if np.allclose(contributions.sum(axis=1), raw, atol=1e-6):
            return model, features, output
    raise BadInputError(
        f"explanations.model {path}: {type(model).__name__} is not a tree model shap's TreeExplainer explains "
        f"additively ({problem})"
    )


def load_tree_model(path: str, reference: pd.DataFrame, numeric, categorical) -> Explainer:
    """The model's own tree model: a LightGBM text model (`tree` ...) or an XGBoost JSON model
    (`{` ...); a binary classifier's raw output is log-odds."""
    payload = _read_model_file(path)
    coding = FeatureCoding.from_reference(reference, numeric, categorical)
    output = None
    if payload.startswith(b"tree"):
        booster, features, binary = _lightgbm_model(path, payload)
    elif payload.lstrip().startswith(b"{"):
        booster, features, binary = _xgboost_model(path, payload)
    elif payload.startswith(b"PK"):  # a skops file is a zip archive
        booster, features, output = _sklearn_model(path, payload, coding.matrix(reference.iloc[:200]))
        binary = False
    elif path.endswith(".onnx"):
        background = coding.matrix(reference.sample(min(len(reference), 5 * ONNX_BACKGROUND), random_state=0))
        booster, output, binary = OnnxModel(path, payload, background), "probability", False
        features = booster.features if booster.features is not None else len(coding.features)
    else:
        raise BadInputError(
            f"explanations.model {path}: neither a LightGBM text model (Booster.save_model) nor an XGBoost JSON "
            "model (Booster.save_model to a .json file), a skops file of a scikit-learn model nor an ONNX model "
            "(.onnx); pickled models are refused, since loading a pickle runs its code"
        )
    if features != len(coding.features):
        raise BadInputError(
            f"explanations.model {path}: the model reads {features} features, the registry declares "
            f"{len(coding.features)} ({', '.join(coding.features)}, numeric then categorical)"
        )
    return Explainer(booster, coding, path, output or ("log-odds" if binary else "score"))


def explainer_from_text(text: str, coding: FeatureCoding, source: str, output: str, fidelity) -> Explainer:
    import lightgbm as lgb

    return Explainer(lgb.Booster(model_str=text), coding, source, output, fidelity)


def ndcg(reference_importance: np.ndarray, current_importance: np.ndarray) -> float:
    """nDCG of the current ranking of features (by mean |attribution|), the reference's mean
    |attribution| being each feature's relevance; 1 when the ranking is unchanged."""
    from sklearn.metrics import ndcg_score

    if len(reference_importance) < 2 or not np.any(reference_importance > 0):
        return 1.0
    return float(ndcg_score(reference_importance[None, :], current_importance[None, :]))


@dataclass(frozen=True)
class AttributionDrift:
    feature: str
    reference_importance: float  # mean |attribution| in the reference
    importance: float  # mean |attribution| in the window
    p_value: float  # two-sample KS of the attributions
    effect_size: float  # Wasserstein distance / the reference attributions' standard deviation
    drifted: bool


def attribution_drift(
    features: tuple[str, ...],
    reference: np.ndarray,
    current: np.ndarray,
    p_value: float,
    min_effect_size: float,
) -> tuple[list[AttributionDrift], float]:
    """Per feature, the drift of its attributions (Bonferroni over the features), and the nDCG of
    the global ranking."""
    reference_importance = np.abs(reference).mean(axis=0)
    importance = np.abs(current).mean(axis=0)
    threshold = p_value / max(len(features), 1)
    out = []
    for i, feature in enumerate(features):
        _, p, wasserstein = ks_wasserstein(np.sort(reference[:, i]), np.sort(current[:, i]))
        scale = float(np.std(reference[:, i]))
        effect = wasserstein / scale if scale > 0 else wasserstein
        out.append(
            AttributionDrift(
                feature,
                float(reference_importance[i]),
                float(importance[i]),
                p,
                effect,
                bool(p < threshold and effect >= min_effect_size),
            )
        )
    return out, ndcg(reference_importance, importance)


def _sample(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.iloc[np.sort(np.random.default_rng(0).choice(len(frame), size=max_rows, replace=False))]


def reference_attributions(explainer: Explainer, reference: pd.DataFrame, max_rows: int) -> np.ndarray:
    values, _, _ = explainer.attributions(explainer.coding.matrix(_sample(reference, explainer.row_limit(max_rows))))
    return values


def explanation_summary(
    explainer: Explainer,
    reference: np.ndarray,
    snapshot: pd.DataFrame,
    min_fidelity: float,
    max_rows: int,
    p_value: float = 0.05,
    min_effect_size: float = 0.1,
) -> dict:
    """Per model version: the attributions of up to max_rows of its rows (fixed seed), their
    additivity, the explainer's fidelity on the day, and the drift of the attributions."""
    versions = {}
    for version, current in snapshot.groupby("model_version", sort=True):
        rows = _sample(current, explainer.row_limit(max_rows))
        x = explainer.coding.matrix(rows)
        values, expected, error = explainer.attributions(x)
        fidelity = r_squared(rows["score"].to_numpy(dtype=np.float64, na_value=np.nan), explainer.predicted_scores(x))
        usable = fidelity is not None and fidelity >= min_fidelity
        drift, ranking = attribution_drift(explainer.coding.features, reference, values, p_value, min_effect_size)
        versions[version] = {
            "rows_explained": len(rows),
            "fidelity": fidelity,
            "usable": usable,
            "note": ""
            if usable
            else f"fidelity {'unknown' if fidelity is None else f'{fidelity:.3f}'} is below {min_fidelity}: "
            "the attributions explain the explainer, not the model; no drift is reported from them",
            "additivity_error": error,
            "expected_value": float(np.mean(expected)) if len(expected) else None,
            "ndcg": ranking if usable else None,
            "ndcg_alarm": bool(usable and ranking < NDCG_ALARM),
            "drifted_features": [d.feature for d in drift if d.drifted] if usable else [],
            "features": [{**vars(d), "drifted": d.drifted and usable} for d in drift],
        }
    return {
        "explainer": explainer.source,
        "output": explainer.output,
        "holdout_fidelity": explainer.holdout_fidelity,
        "method": "TreeSHAP (LightGBM pred_contrib, path-dependent)",
        "min_fidelity": min_fidelity,
        "versions": versions,
    }
