"""`NodeFeaturizer`: metadata of one node type -> a float32 feature matrix (sklearn fit/transform).

Inside is a scikit-learn `ColumnTransformer`:

- numeric columns: `SimpleImputer(strategy="median")` (blank cells become the median of the
  rows `fit` saw; a column blank in every such row becomes 0), `log1p` for the `config.log`
  ones (counts, sizes), then `StandardScaler` (a constant column becomes 0); beside them a
  `MissingIndicator` adds one 0/1 feature per numeric column that had blanks in `fit`
  (`missingindicator_<column>`; a column complete in `fit` gets none, so a complete zoo's
  features are exactly those without imputation);
- categorical columns: a blank cell is its own category `missing` (`SimpleImputer(strategy=
  "constant")`), then `OneHotEncoder(handle_unknown="ignore")`, values compared as strings;
  a category not seen in `fit` becomes all zeros, not an error;
- text columns: each embedded separately by the text encoder, one vector per cell. A cell is
  one string: a label list such as `labels = "cat, dog, car"` is embedded as that one string,
  i.e. the encoder mean-pools over the tokens of all class names (not a mean of per-class
  vectors). Embeddings are used as the encoder gives them by default (`text_scaling="none"`):
  standardising hundreds of dimensions on a few hundred nodes inflates noise directions, and
  every predictor learns its own input scale. `text_scaling="standard"` standardises them.
  A blank text cell is embedded as the empty text.

Blank cells are NaN, None or a text in `tpred.data.tables.MISSING_VALUES` (`NA`, `null`, ...).
With `config.impute == "error"` a blank cell is an error instead.

`fit` sees only the rows it is given (predictors pass their training nodes), and unseen nodes go
through the same fitted transform. The fitted featurizer pickles with its encoder (a
`TransformersEncoder` pickles without its weights and reloads them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from tpred.config import NodeFeatureConfig
from tpred.data.tables import is_missing
from tpred.errors import NotFittedError
from tpred.text import TextEncoder

__all__ = ["NodeFeaturizer", "TextEmbedder"]

TEXT_SCALINGS = ("none", "standard")
#: the category a blank categorical cell becomes
MISSING_CATEGORY = "missing"


def _log1p_columns(x: np.ndarray, mask: Sequence[bool] = ()) -> np.ndarray:
    """log1p of the masked columns of x [N, C] (module level, so the featurizer pickles).

    Shapes: x [N, C], mask [C] -> [N, C] float64.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    if len(mask):
        cols = np.asarray(mask, dtype=bool)
        x[:, cols] = np.log1p(x[:, cols])
    return x


def _show(value):
    """A numpy scalar as the plain Python value, so messages read `-1.0`, not `np.float64(-1.0)`."""
    return value.item() if isinstance(value, np.generic) else value


class TextEmbedder(TransformerMixin, BaseEstimator):
    """One text column -> embeddings [N, dim]; each distinct text is encoded once per call.

    Args:
        encoder: the text encoder.
        column: the column name (for messages and feature names).
    """

    def __init__(self, encoder: TextEncoder | None = None, column: str = "text") -> None:
        self.encoder = encoder
        self.column = column

    def fit(self, X, y=None) -> TextEmbedder:
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        out = self._embed(X)  # encode once (TransformerMixin's default would encode twice)
        self.dim_ = int(out.shape[1])
        return out

    def transform(self, X) -> np.ndarray:
        if not hasattr(self, "dim_"):
            raise NotFittedError("TextEmbedder is not fitted; call fit(X)")
        return self._embed(X)

    def _embed(self, X) -> np.ndarray:
        if self.encoder is None:
            raise ValueError(f"NodeFeaturizer: text column {self.column!r} needs a text encoder; "
                             f"pass encoder=... (e.g. tpred.text.load_encoder(cfg.text))")
        values = list(np.asarray(X, dtype=object).reshape(-1))
        unique = list(dict.fromkeys(values))
        vectors = self.encoder(unique).detach().cpu().numpy().astype(np.float32)  # [U, dim]
        position = {text: i for i, text in enumerate(unique)}
        return vectors[[position[v] for v in values]].reshape(len(values), -1)   # [N, dim]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"dim{k}" for k in range(self.dim_)], dtype=object)


def _text_step(col: str) -> str:
    """The `ColumnTransformer` step name of text column `col` (its features `text_<col>__dim<k>`;
    `text_weight` addresses the step by it)."""
    return f"text_{col}"


class NodeFeaturizer(TransformerMixin, BaseEstimator):
    """Metadata frame of one node type -> features [N, F] float32 (see the module docstring).

    Args:
        config: which columns are numeric (and log-scaled), categorical and text.
        encoder: the text encoder; needed only when `config.text` is not empty.
        text_scaling: `none` (embeddings as given) or `standard` (StandardScaler per dimension).

    Shapes: `transform(X)` with X a DataFrame of N rows -> ndarray float32 [N, F];
    F = 0 when the config names no columns.

    Raises:
        ValueError: a configured column is missing (names the columns found); a numeric column
            holds a non-number or inf, or a log column a negative value; a text column holds a
            non-string; with `config.impute == "error"`, a blank cell.
    """

    def __init__(self, config: NodeFeatureConfig, encoder: TextEncoder | None = None, *,
                 text_scaling: str = "none") -> None:
        self.config = config
        self.encoder = encoder
        self.text_scaling = text_scaling

    # ----------------------------------------------------------------------------- sklearn API
    def fit(self, X: pd.DataFrame, y=None) -> NodeFeaturizer:
        """Fit scalers, category lists and text dimensions on the rows of X only."""
        if self.text_scaling not in TEXT_SCALINGS:
            raise ValueError(f"NodeFeaturizer: text_scaling must be one of {TEXT_SCALINGS}, got "
                             f"{self.text_scaling!r}")
        frame = self._clean(X)
        self.n_features_in_ = len(self.config.columns)
        self.feature_names_in_ = np.asarray(self.config.columns, dtype=object)
        transformers = self._transformers()
        if transformers:
            weights = ({_text_step(col): self.config.text_weight for col in self.config.text}
                       if self.config.text_weight != 1.0 else None)
            self.column_transformer_ = ColumnTransformer(transformers, remainder="drop",
                                                         sparse_threshold=0.0,
                                                         transformer_weights=weights)
            self.column_transformer_.fit(frame)
            self.n_features_out_ = len(self.column_transformer_.get_feature_names_out())
        else:
            self.column_transformer_ = None
            self.n_features_out_ = 0
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Features of every row of X [N, F] float32, through the transform fitted in `fit`."""
        if not hasattr(self, "n_features_out_"):
            raise NotFittedError("NodeFeaturizer is not fitted; call fit(metadata) first")
        frame = self._clean(X)
        if self.column_transformer_ is None:
            return np.zeros((len(frame), 0), dtype=np.float32)                 # [N, 0]
        out = np.asarray(self.column_transformer_.transform(frame), dtype=np.float32)
        return out.reshape(len(frame), self.n_features_out_)                   # [N, F]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the F output columns, e.g. `num__train_size`, `cat__domain_photo`."""
        if not hasattr(self, "n_features_out_"):
            raise NotFittedError("NodeFeaturizer is not fitted; call fit(metadata) first")
        if self.column_transformer_ is None:
            return np.asarray([], dtype=object)
        return self.column_transformer_.get_feature_names_out()

    # -------------------------------------------------------------------------------- helpers
    def _transformers(self) -> list[tuple]:
        cfg = self.config
        steps: list[tuple] = []
        if cfg.numeric:
            mask = [c in cfg.log for c in cfg.numeric]
            steps.append(("num", Pipeline([
                # keep_empty_features: a column blank in every fitted row stays (as 0), so the
                # feature count never depends on which nodes a fold trains on
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("log1p", FunctionTransformer(_log1p_columns, kw_args={"mask": mask},
                                              feature_names_out="one-to-one")),
                ("scale", StandardScaler()),
            ]), list(cfg.numeric)))
            # one 0/1 column per numeric column with blanks in fit; error_on_new=False: a blank
            # in a column complete in fit is imputed without an indicator the model never saw
            steps.append(("missing", MissingIndicator(error_on_new=False), list(cfg.numeric)))
        if cfg.categorical:
            steps.append(("cat", Pipeline([
                # keep_empty_features: a column blank in every fitted row is all `missing` (one
                # constant feature) instead of dropped with a scikit-learn warning per fit
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY,
                                         keep_empty_features=True)),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]), [self._str_name(c) for c in cfg.categorical]))
        for col in cfg.text:
            embed = TextEmbedder(self.encoder, column=col)
            step = (embed if self.text_scaling == "none"
                    else Pipeline([("embed", embed), ("scale", StandardScaler())]))
            steps.append((_text_step(col), step, [self._str_name(col)]))
        return steps

    def _str_name(self, col: str) -> str:
        """Internal name of the string copy of a column (distinct if it is numeric too)."""
        return f"{col} (str)" if col in self.config.numeric else col

    def _clean(self, X: pd.DataFrame) -> pd.DataFrame:
        """The configured columns, checked and typed: numeric float64 (NaN where blank),
        categorical str objects (NaN where blank), text str (empty where blank)."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"NodeFeaturizer expects a pandas DataFrame of metadata, got "
                            f"{type(X).__name__}")
        cfg = self.config
        if missing := [c for c in cfg.columns if c not in X.columns]:
            raise ValueError(f"NodeFeaturizer: column(s) {missing} not found; columns found: "
                             f"{list(X.columns)}")
        blank = {col: is_missing(X[col]) for col in cfg.columns}
        if cfg.impute == "error":
            for col, mask in blank.items():
                if mask.any():
                    i = int(np.flatnonzero(mask)[0])
                    raise ValueError(f"NodeFeaturizer: column {col!r} has a blank value in row "
                                     f"{X.index[i]!r} ({_show(X[col].iloc[i])!r}) and impute "
                                     f"is 'error' ({int(mask.sum())} blank row(s))")
        out: dict[str, np.ndarray] = {}
        for col in cfg.numeric:
            raw = X[col]
            num = pd.to_numeric(raw.where(~blank[col]), errors="coerce").to_numpy(
                dtype=np.float64)
            if (bad := ~blank[col] & ~np.isfinite(num)).any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"NodeFeaturizer: numeric column {col!r} must hold finite "
                                 f"numbers or blanks; row {X.index[i]!r} has "
                                 f"{_show(raw.iloc[i])!r}")
            if col in cfg.log and (neg := num < 0).any():
                i = int(np.flatnonzero(neg)[0])
                raise ValueError(f"NodeFeaturizer: log-scaled column {col!r} must be >= 0; "
                                 f"row {X.index[i]!r} has {_show(raw.iloc[i])!r}")
            out[col] = num
        for col in cfg.categorical:
            values = X[col].astype(str).to_numpy(dtype=object)
            values[blank[col]] = np.nan  # the imputer's `missing` category
            out[self._str_name(col)] = values
        for col in cfg.text:
            values = X[col].to_numpy(dtype=object).copy()
            values[blank[col]] = ""
            if bad := [i for i, v in enumerate(values) if not isinstance(v, str)]:
                i = bad[0]
                raise ValueError(f"NodeFeaturizer: text column {col!r} must hold text (or "
                                 f"blanks); row {X.index[i]!r} has {_show(values[i])!r} "
                                 f"({type(values[i]).__name__}, {len(bad)} bad row(s))")
            out[self._str_name(col)] = values
        return pd.DataFrame(out, index=X.index)
