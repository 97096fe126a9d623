"""Surviving mutants that cannot change behaviour, by mutmut's name, each with the reason.

``scripts/mutation.py`` leaves them out of each module's score; docs/testing.md lists them.
"""

from __future__ import annotations

_CALIBRATION = "dropout_risk.models.calibration.x"
_CALIBRATOR = f"{_CALIBRATION}ǁProbabilityCalibratorǁ"
_LANDMARK_CASTS = (
    ("fit", 51),
    ("fit", 53),
    ("_shrunk_shifts", 4),
    ("_shrunk_shifts", 6),
    ("_own_intercepts", 5),
    ("_own_intercepts", 7),
)
_NO_OLD_SLOPE = "only an old pickle has model_, and none has slope_ too: the key's test never decides"
_LABELS_DTYPE = "y is already 0/1 numbers (int or float): the fit sees the same two classes without the cast"
_RESHAPE = "numpy infers a dimension given any negative size: reshape(-2) is reshape(-1)"
_INPUT_DTYPE = "IsotonicRegression.predict converts its input to float itself"
_LANDMARK_DTYPE = "landmarks are numbers (float, NaN for none, or int): == and isfinite give the same masks uncast"
_ONE_PER_LANDMARK = "one shift (one fitted intercept) per landmark of its own by construction: zip needs no strict"
_LBFGS_ITERATIONS = "lbfgs fits these few-column logistic models in well under 100 iterations: never reached"
_CONVERGES = "the step vanishes only at the maximum: a curvature up to 2x too high still gets there within 100 steps"
_UNREACHED_BOUND = "never exactly on the bound: a Newton step of exactly 1e-12, a root at exactly +-1000"
_ISOTONIC_ZEROS = "isotonic has no intercept table and a pooled intercept of 0: the general path gives the same zeros"
_ALWAYS_A_TABLE = "every calibrator that can score has landmark_intercepts_ (fit sets it, __setstate__ defaults it)"
_FOREIGN_KEY_JOIN = "without an ON clause SQLAlchemy joins on the one foreign key, api_keys.clinic_id = clinics.id"
_COMPILED = "dropout_risk.models.compiled.x"
_LIGHTGBM = f"{_COMPILED}ǁ_LightGBMScorerǁ"
_ROW = f"{_COMPILED}ǁCompiledModelǁrow__mutmut_"
_THREADS = "LightGBM scores each row on its own: any thread count gives the same numbers (1 spares a request the pool)"
_BOOSTER_FLOATS = "Booster.predict returns float64 already: the cast is a no-op"
_FLOAT_TABLE = "the recoding table holds only floats (codes and NaN): float64 without the dtype"
_NONE_IS_NAN = "None stored into a float array is NaN: the same missing value as np.nan"
_JSON_SERIES = (
    "for every JSON value (str, list, dict: numbers take the branch above) the series is the same type either way"
)
_LOGISTIC = f"{_COMPILED}ǁ_LogisticScorerǁ"
_CALIBRATOR_C = f"{_COMPILED}ǁ_Calibratorǁ"
_MATRIX = f"{_COMPILED}ǁCompiledModelǁmatrix__mutmut_"
_SAME_LENGTH_POSITIONS = "_positions returns one position per feature (or raises): zip of equal lengths by construction"
_ARTIFACT_FLOATS = "the artifact reads every number with float() (artifact._number): a list of floats is float64 anyway"
_INT_LISTS = "a non-empty list of Python ints (positions, design columns, -1) is an int64 (intp) array anyway"
_NO_COLUMN = "any negative entry means no design column (active >= 0 picks the rest): -2 is as much none as -1"
_COMMON_KEYS = "without on, merge joins on the common columns: client_id and landmark, the same keys"
_INTERP_CLAMPS = "np.interp returns y[0] below x[0] and y[-1] above x[-1]: the clip's missing bound changes nothing"
_SPLITS = "dropout_risk.training.splits.x"
_CALLERS_PASS_SEED = "a default never used: every caller of the product passes its seed (training.seed, compare.seed)"
_BOOTSTRAP = "dropout_risk.training.evaluation.bootstrap.x"
_UNUSED_DEFAULT = "a default no caller uses: every caller passes it (client column, resamples, seed)"
_FLOAT_VALUES = "the values are numbers (float64 arrays or lists of floats and NaN): float64 without the dtype"
_NO_ESTIMATE_NEEDED = "the estimate is read only for the ECE, which always has one: the default is never used"
_SAME_WEIGHTS = "the pooled group's rows are all rows: rows(all) has the same client codes, the same weights"
_TRAJ = "dropout_risk.features.trajectories.x"
_CALLERS_FLOAT = "callers pass float or int arrays (NaN only in floats): the same arithmetic without the cast"
_NAN_TEXT = "float('NAN') is NaN: Python reads the text case-insensitively"
_BY_NAME = "the sorted frame is read by column name only; the contract's frames have no 'index' column to clash"
_TWO_KEYS = "pandas applies kind only to one-column sorts: two keys always sort stably (lexsort)"
_FLOAT_SCORES = "the contract types every score column float64: the same float array, NaN for missing"
_ALIGNED = "transform returns values aligned to the rows whatever the group order"
_NEVER_FITTED = "a k with 3 or fewer clients is never fitted (MIN_CLIENTS is 5): its own residual SD is never read"
_UNREAD = "read nowhere: the index's name, or a column whose NaN and 0 decide the same (not fitted)"
_SCORING = "dropout_risk.serving.scoring.x"
_TYPED_LISTS = "a list of Python ints (floats) is an int64 (float64) array without the dtype"
_SAME_LENGTH = "landmark_of is built from history itself: the two always have the same length"
_STORE = "dropout_risk.serving.store.x_"
_COLUMN_DEFAULT = "the column's default (status 'ongoing', covariates {}): SQLAlchemy's insert fills it in"
_ON_UPDATE = "clients.updated_at has onupdate=func.now(): an UPDATE that leaves it out still sets it"
_PROMOTE = "dropout_risk.training.jobs.promote.x_"
_SAME_CLIENT = "without a client the registry helpers make MlflowClient(): the same tracking and registry URIs"
_PROMOTED_SET = "never read as first set: a forced decision sets True, the gate sets `not reasons`, a refusal raises"
_MERGE_KEYS = "on=None merges on the shared columns, client_id and landmark (label is only the challenger's)"
EQUIVALENT: dict[str, dict[str, str]] = {
    "training/jobs/promote.py": {
        **{f"{_PROMOTE}promote__mutmut_{n}": _PROMOTED_SET for n in (17, 25)},
        **{f"{_PROMOTE}promote__mutmut_{n}": _SAME_CLIENT for n in (49, 52)},
        **{f"{_PROMOTE}_versions__mutmut_{n}": _SAME_CLIENT for n in (4, 6, 20, 22)},
        **{f"{_PROMOTE}_run_gate__mutmut_{n}": _MERGE_KEYS for n in (113, 115)},
    },
    "serving/store.py": {
        f"{_STORE}lock_or_create_client__mutmut_13": "every reader reads a client's covariates as `covariates or {}`",
        **{f"{_STORE}lock_or_create_client__mutmut_{n}": _COLUMN_DEFAULT for n in (16, 17)},
        f"{_STORE}lock_or_create_client__mutmut_4": "SQLite compiles the PostgreSQL upsert to the same ON CONFLICT",
        f"{_STORE}lock_or_create_client__mutmut_9": "no other unique column a new client could clash on (id generated)",
        f"{_STORE}set_current_risk__mutmut_13": _ON_UPDATE,
        f"{_STORE}set_episode__mutmut_9": _ON_UPDATE,
        **{
            f"{_STORE}served_risk__mutmut_{n}": "without an ON clause SQLAlchemy joins on the one foreign key, "
            "sessions.client_pk = clients.id"
            for n in (8, 10)
        },
    },
    "serving/scoring.py": {
        **{f"{_SCORING}_client_history__mutmut_{n}": _TYPED_LISTS for n in (14, 16, 25, 27, 33, 35)},
        f"{_SCORING}_client_history__mutmut_17": "session dates are midnights: their ns counts are exact in float64",
        **{f"{_SCORING}_score_history__mutmut_{n}": _SAME_LENGTH for n in (40, 43, 44)},
        f"{_SCORING}_score_history__mutmut_65": "n sizes only the stand-in for an absent column; value[0] is read",
    },
    "features/trajectories.py": {
        **{f"{_TRAJ}ǁExpectedTrajectoriesǁexpected__mutmut_{n}": _CALLERS_FLOAT for n in (4, 6, 9, 11)},
        f"{_TRAJ}ǁExpectedTrajectoriesǁexpected__mutmut_29": "the stand-in for an unknown session is masked to NaN",
        f"{_TRAJ}__from_json_float__mutmut_5": _NAN_TEXT,
        f"{_TRAJ}__unfitted_curve__mutmut_5": _NAN_TEXT,
        f"{_TRAJ}_trajectory_sums__mutmut_12": "session_number is int64 after the contract: the same array",
        **{f"{_TRAJ}__landmark_sessions__mutmut_{n}": _BY_NAME for n in (5, 16)},
        **{f"{_TRAJ}__landmark_sessions__mutmut_{n}": _TWO_KEYS for n in (7, 9, 14, 15)},
        **{f"{_TRAJ}__instrument_sums__mutmut_{n}": _FLOAT_SCORES for n in (3, 5, 7, 8, 9, 10)},
        **{f"{_TRAJ}__instrument_sums__mutmut_{n}": _ALIGNED for n in (14, 16, 18)},
        f"{_TRAJ}_curve_from_sums__mutmut_19": ".loc with whole floats finds the same integer labels",
        f"{_TRAJ}_curve_from_sums__mutmut_38": "Curve casts n_clients to int itself",
        **{f"{_TRAJ}__lines__mutmut_{n}": _UNREAD for n in (5, 8, 12, 13, 72, 73, 74, 77)},
        f"{_TRAJ}__lines__mutmut_27": "no spread: slope 0/0 is NaN, as the NaN it replaces; that k borrows anyway",
        **{f"{_TRAJ}__lines__mutmut_{n}": _NEVER_FITTED for n in (69, 70)},
    },
    "training/evaluation/bootstrap.py": {
        **{f"{_BOOTSTRAP}_client_codes__mutmut_{n}": _UNUSED_DEFAULT for n in (1, 2)},
        f"{_BOOTSTRAP}_draw_clients__mutmut_11": "rng.integers(n, size=...) draws from [0, n), as integers(0, n) does",
        **{f"{_BOOTSTRAP}_percentile_interval__mutmut_{n}": _FLOAT_VALUES for n in (12, 14)},
        **{f"{_BOOTSTRAP}_recentred_interval__mutmut_{n}": _FLOAT_VALUES for n in (4, 6)},
        **{f"{_BOOTSTRAP}_client_bootstrap__mutmut_{n}": _UNUSED_DEFAULT for n in (3, 5)},
        f"{_BOOTSTRAP}_client_bootstrap__mutmut_29": "numpy reads sort kinds case-insensitively: 'STABLE' is 'stable'",
        f"{_BOOTSTRAP}_client_bootstrap__mutmut_34": "the codes run 0..n_clients-1 (factorize): bincount's length",
        **{f"{_BOOTSTRAP}_client_bootstrap__mutmut_{n}": "None in a float64 array is NaN" for n in (84, 86)},
        **{f"{_BOOTSTRAP}_bootstrap_metric_cis__mutmut_{n}": _UNUSED_DEFAULT for n in (9, 11)},
        f"{_BOOTSTRAP}_bootstrap_metric_cis__mutmut_46": "an unfilled None becomes NaN in the interval's float64 array",
        f"{_BOOTSTRAP}_bootstrap_metric_cis__mutmut_51": "the estimate is the first of two identical weight rows",
        **{f"{_BOOTSTRAP}_bootstrap_metric_cis__mutmut_{n}": _SAME_WEIGHTS for n in (83, 86, 87)},
        **{f"{_BOOTSTRAP}_bootstrap_metric_cis__mutmut_{n}": _NO_ESTIMATE_NEEDED for n in (106, 108)},
        **{f"{_BOOTSTRAP}_paired_bootstrap_difference__mutmut_{n}": _UNUSED_DEFAULT for n in (5, 6)},
        f"{_BOOTSTRAP}_paired_bootstrap_difference__mutmut_25": "the delta is the first of two identical weight rows",
    },
    "training/splits.py": {
        f"{_SPLITS}_holdout_clients__mutmut_1": "any kind but 'temporal' is the random split: the default still is",
        f"{_SPLITS}_holdout_clients__mutmut_2": "any kind but 'temporal' is the random split: the default still is",
        f"{_SPLITS}_holdout_clients__mutmut_3": _CALLERS_PASS_SEED,
        f"{_SPLITS}_grouped_folds__mutmut_1": _CALLERS_PASS_SEED,
        f"{_SPLITS}_leave_one_clinic_out__mutmut_9": "the comparison has no missing values left: to_numpy() is bool",
    },
    "models/compiled.py": {
        f"{_LIGHTGBM}__init____mutmut_16": "a list of Python ints is an int64 (intp) array without the dtype",
        f"{_LIGHTGBM}__init____mutmut_18": "a list of Python ints is an int64 (intp) array without the dtype",
        f"{_LIGHTGBM}__init____mutmut_38": _NONE_IS_NAN,
        f"{_LIGHTGBM}__init____mutmut_40": _NONE_IS_NAN,
        f"{_LIGHTGBM}__init____mutmut_45": _FLOAT_TABLE,
        f"{_LIGHTGBM}__init____mutmut_47": _FLOAT_TABLE,
        **{f"{_LIGHTGBM}raw_probability__mutmut_{n}": _BOOSTER_FLOATS for n in (2, 4)},
        **{f"{_LIGHTGBM}raw_probability__mutmut_{n}": _THREADS for n in (6, 8, 10)},
        **{f"{_LIGHTGBM}raw_contributions__mutmut_{n}": _BOOSTER_FLOATS for n in (3, 5)},
        **{f"{_LIGHTGBM}raw_contributions__mutmut_{n}": _THREADS for n in (8, 11, 14)},
        f"{_ROW}19": _NONE_IS_NAN,
        f"{_ROW}21": _NONE_IS_NAN,
        f"{_ROW}30": "astype(None) is astype(float64): numpy's default dtype",
        f"{_ROW}36": _JSON_SERIES,
        f"{_ROW}38": _JSON_SERIES,
        f"{_COMPILED}__codes__mutmut_1": "comparing or flooring NaN and inf raises no floating-point warning",
        f"{_COMPILED}__codes__mutmut_9": "a code equal to n_levels, valid or not, becomes n_levels (missing)",
        f"{_COMPILED}__is_missing__mutmut_5": (
            "only a list (or array) of 0 or 2+ items makes pd.isna raise: no number (NaN either way), no level"
        ),
        **{f"{_LOGISTIC}__init____mutmut_{n}": _SAME_LENGTH_POSITIONS for n in (7, 10, 15)},
        **{
            f"{_LOGISTIC}__init____mutmut_{n}": _ARTIFACT_FLOATS
            for n in (51, 53, 56, 58, 75, 77, 97, 99, 102, 104, 145, 147, 159, 161)
        },
        **{f"{_LOGISTIC}__init____mutmut_{n}": _NO_COLUMN for n in (126, 130, 137)},
        f"{_LOGISTIC}__init____mutmut_127": "fill is None: where.get(None, -1) is -1, the keys are category texts",
        **{f"{_LOGISTIC}__init____mutmut_{n}": _INT_LISTS for n in (140, 142)},
        f"{_LOGISTIC}__init____mutmut_152": "a 1-D coef: design @ coef is (n,), as (n, 1) reshaped to (n,) is",
        f"{_LOGISTIC}__init____mutmut_154": _RESHAPE,
        f"{_COMPILED}ǁ_LogisticScorerǁraw_probability__mutmut_6": _RESHAPE,
        **{f"{_CALIBRATOR_C}__init____mutmut_{n}": _ARTIFACT_FLOATS for n in (7, 9, 11, 13)},
        f"{_CALIBRATOR_C}logit_intercepts__mutmut_5": "np.zeros(()) is 0.0: added to the baseline, it broadcasts",
        **{
            f"{_CALIBRATOR_C}__call____mutmut_{n}": "p is the scorer's float64 output: logit, clip take it as is"
            for n in (4, 6)
        },
        f"{_CALIBRATOR_C}__call____mutmut_8": _RESHAPE,
        **{f"{_CALIBRATOR_C}__call____mutmut_{n}": _INTERP_CLAMPS for n in (24, 25)},
        f"{_MATRIX}11": "astype(None) is astype(float64): numpy's default dtype",
        **{f"{_MATRIX}{n}": _NONE_IS_NAN for n in (32, 34)},
        f"{_MATRIX}37": "the codes are floats and NaN: stored into the float64 matrix, any array of them is the same",
        **{f"{_COMPILED}_risk_per_session__mutmut_{n}": _COMMON_KEYS for n in (23, 27)},
        f"{_COMPILED}ǁCompiledModelǁbuild_features__mutmut_6": (
            "the default episodes frame is empty: no client matches whatever its client_id's dtype (object or string)"
        ),
        f"{_COMPILED}ǁCompiledModelǁpredict__mutmut_3": (
            "_check has made it p > 0 columns; 0 rows then give an empty array through either scorer and calibrator"
        ),
    },
    "serving/keys.py": {
        "dropout_risk.serving.keys.x_digest__mutmut_4": "'UTF-8' and 'utf-8' name the same codec",
        "dropout_risk.serving.keys.x_create_key__mutmut_8": "token_urlsafe(None) draws DEFAULT_ENTROPY: 32 bytes",
        "dropout_risk.serving.keys.x_list_keys__mutmut_5": _FOREIGN_KEY_JOIN,
        "dropout_risk.serving.keys.x_list_keys__mutmut_7": _FOREIGN_KEY_JOIN,
    },
    "models/calibration.py": {
        **{f"{_CALIBRATOR}fit__mutmut_{n}": _LABELS_DTYPE for n in (3, 5)},
        f"{_CALIBRATOR}fit__mutmut_46": "without landmarks of their own the shifts only feed np.any: [0.] is as false",
        **{f"{_CALIBRATOR}{f}__mutmut_{n}": _LANDMARK_DTYPE for f, n in _LANDMARK_CASTS},
        **{f"{_CALIBRATOR}{f}__mutmut_{n}": _RESHAPE for f, n in (("fit", 55), ("fit", 103), ("_shrunk_shifts", 8))},
        f"{_CALIBRATOR}_own_intercepts__mutmut_9": _RESHAPE,
        **{f"{_CALIBRATOR}fit__mutmut_{n}": _ONE_PER_LANDMARK for n in (60, 63, 64, 82, 85, 86)},
        **{f"{_CALIBRATOR}_shrunk_shifts__mutmut_{n}": _ONE_PER_LANDMARK for n in (62, 65, 66)},
        f"{_CALIBRATOR}fit__mutmut_74": "the refit runs only after a joint slope > 0: its Newton slope is never 0.0",
        **{f"{_CALIBRATOR}fit__mutmut_{n}": _LBFGS_ITERATIONS for n in (95, 97)},
        **{f"{_CALIBRATOR}_shrunk_shifts__mutmut_{n}": _LBFGS_ITERATIONS for n in (33, 36)},
        f"{_CALIBRATOR}_shrunk_shifts__mutmut_19": "astype(None) is astype(float64): numpy's default dtype",
        f"{_CALIBRATOR}_shrunk_shifts__mutmut_22": "no other rows: an all-zero column, its coefficient stays 0",
        f"{_CALIBRATOR}_shrunk_shifts__mutmut_34": "C 1e6 -> 1000001: a penalty as negligible",
        **{f"{_CALIBRATOR}transform__mutmut_{n}": _INPUT_DTYPE for n in (6, 8)},
        **{f"{_CALIBRATOR}logit_intercepts__mutmut_{n}": _ISOTONIC_ZEROS for n in (2, 3)},
        **{f"{_CALIBRATOR}logit_intercepts__mutmut_{n}": _ALWAYS_A_TABLE for n in (8, 11)},
        **{f"{_CALIBRATOR}__setstate____mutmut_{n}": _NO_OLD_SLOPE for n in (9, 10)},
        f"{_CALIBRATION}__platt_with_offset__mutmut_8": "101 iterations instead of 100: it converges in about 5",
        **{f"{_CALIBRATION}__platt_with_offset__mutmut_{n}": _CONVERGES for n in (19, 20)},
        f"{_CALIBRATION}__platt_with_offset__mutmut_26": _UNREACHED_BOUND,
        f"{_CALIBRATION}__offset_intercept__mutmut_9": "brentq's default xtol, 2e-12: the same root to 1e-11",
        **{f"{_CALIBRATION}__offset_intercept__mutmut_{n}": _UNREACHED_BOUND for n in (17, 18)},
    },
}


# Equivalent mutants of the landmark feature modules (features/score_features.py, client_blocks.py, landmarks.py),
# kept in a block of their own.
_SCORE = "dropout_risk.features.score_features.x"
_AS_FLOAT64 = "astype(None) is astype(float64): numpy's default dtype"
_FLOAT_RAW = "both paths hand over raw scores as float64 arrays: normalise keeps them float64"
_ONES_MASK = "an all-ones mask either way: np.where reads 1.0 as True"
_BLOCKS = "dropout_risk.features.client_blocks.x"
_FLOAT_CALLERS = "every caller passes float64 arrays (scores, NaN-free sums, np.inf stand-ins): the same array"
_BELOW_ANY_ROW = "a stand-in below every client's first row is replaced by -1 in the next line"
_BOOL_CUMSUM = "cumsum of a bool mask counts in the platform's int, int64 here: the same counts"
_SPARE_GRID = "an extra grid row or column (or shifted rows) is padded, never read: same values, a few more cells"
_NEVER_EMPTY = "_accumulate returns before building a grid for an empty table: that branch is never taken"
_TRAILING_PAD = "each client's rows start the grid row: the padding only follows them and is never summed into them"
_LANDMARKS = "dropout_risk.features.landmarks.x"
_TO_NUMERIC = "pd.to_numeric reads None as NaN and refuses blank text (NaN): the shortcut only saves the call"
_ONE_CLIENT = "the one-client path never builds a grid, the only reader of codes: their dtype (or absence) is unread"
_FLOAT_SESSIONS = "session numbers as float64: every feature of them is float anyway, and small integers are exact"
_FLOAT_HISTORY = "the service hands over float64 score arrays (serving.scoring.client_history): the same array"
_FLOAT_COLUMNS = "every feature column is computed as float64 already: the final cast changes nothing"
_FLOAT_FRAME = "the contract types scores and missed_since_last float64, NaN for missing: the same array"
_COERCED_FLOATS = "to_numeric(errors='coerce') gives float64, or int64 that take casts: the same floats, NaN if missing"
_TAKE_CASTS = "take casts the looked-up values to float: None becomes NaN"
_NO_NA_LEFT = "status == value reads a missing status as False with or without the bool dtype: the same mask"
_NAME_UNREAD = "the frame is built from a dict: its keys name the columns, the Series' own name is unread"
_STR_INFERRED = "pandas 3 infers the str dtype for an Index of text: the same index"
_INT_SESSIONS = "the contract types session_number int64: the same array"
_MIDNIGHTS = "session dates are midnights: their ns counts are exact in float64"
_MASKED_MISSING = "missing values are coded -1 by the known mask whatever they are filled with"
_DENOMINATOR = "n Sxx - Sx^2 is exactly 0 below two observations and > 0 from two distinct sessions: one test decides"
LANDMARK_EQUIVALENT: dict[str, dict[str, str]] = {
    "features/score_features.py": {
        **{f"{_SCORE}__normalised__mutmut_{n}": _FLOAT_RAW for n in (2, 4)},
        **{f"{_SCORE}__attendance_features__mutmut_{n}": _ONES_MASK for n in (7, 9)},
        f"{_SCORE}__attendance_features__mutmut_27": _AS_FLOAT64,
        f"{_SCORE}__running__mutmut_34": _AS_FLOAT64,
        **{f"{_SCORE}__ols_slope__mutmut_{n}": _DENOMINATOR for n in (21, 24)},
        f"{_SCORE}__alliance_features__mutmut_43": _AS_FLOAT64,
    },
    "features/client_blocks.py": {
        **{f"{_BLOCKS}ǁClientBlocksǁfrom_sorted_codes__mutmut_{n}": _ONES_MASK for n in (5, 7)},
        f"{_BLOCKS}ǁClientBlocksǁlast_position__mutmut_11": _BELOW_ANY_ROW,
        f"{_BLOCKS}ǁClientBlocksǁprevious_position__mutmut_5": _BELOW_ANY_ROW,
        **{f"{_BLOCKS}ǁClientBlocksǁcount__mutmut_{n}": _BOOL_CUMSUM for n in (3, 5)},
        **{f"{_BLOCKS}ǁClientBlocksǁ_grid__mutmut_{n}": _SPARE_GRID for n in (4, 17, 20)},
        **{f"{_BLOCKS}ǁClientBlocksǁ_grid__mutmut_{n}": _NEVER_EMPTY for n in (12, 21, 22)},
        **{f"{_BLOCKS}ǁClientBlocksǁcumsum__mutmut_{n}": _FLOAT_CALLERS for n in (8, 10)},
        f"{_BLOCKS}ǁClientBlocksǁcumsum__mutmut_11": _TRAILING_PAD,
        **{f"{_BLOCKS}ǁClientBlocksǁcummin__mutmut_{n}": _FLOAT_CALLERS for n in (8, 10)},
        f"{_BLOCKS}_take__mutmut_15": _AS_FLOAT64,
        f"{_BLOCKS}_flag__mutmut_7": _AS_FLOAT64,
    },
    "features/landmarks.py": {
        f"{_LANDMARKS}_build_features__mutmut_25": _INT_SESSIONS,
        f"{_LANDMARKS}_build_features__mutmut_47": _MIDNIGHTS,
        f"{_LANDMARKS}__numeric_covariate__mutmut_1": _TO_NUMERIC,
        f"{_LANDMARKS}_client_features__mutmut_4": _FLOAT_SESSIONS,
        **{f"{_LANDMARKS}_client_features__mutmut_{n}": _ONE_CLIENT for n in (7, 12, 14)},
        **{f"{_LANDMARKS}_client_features__mutmut_{n}": _FLOAT_HISTORY for n in (23, 25)},
        f"{_LANDMARKS}_client_features__mutmut_32": _AS_FLOAT64,
        **{f"{_LANDMARKS}_client_features__mutmut_{n}": _FLOAT_COLUMNS for n in (75, 77)},
        f"{_LANDMARKS}__landmark_sessions__mutmut_21": _INT_SESSIONS,
        **{f"{_LANDMARKS}__landmark_sessions__mutmut_{n}": _BY_NAME for n in (42, 44)},
        **{f"{_LANDMARKS}__float_column__mutmut_{n}": _FLOAT_FRAME for n in (6, 7, 8, 9)},
        **{f"{_LANDMARKS}__episode_columns__mutmut_{n}": _COERCED_FLOATS for n in (41, 42, 43, 44)},
        f"{_LANDMARKS}__episode_columns__mutmut_53": _TAKE_CASTS,
        **{f"{_LANDMARKS}__episode_columns__mutmut_{n}": _STR_INFERRED for n in (99, 101)},
        **{f"{_LANDMARKS}__take_episode__mutmut_{n}": _NAME_UNREAD for n in (2, 4)},
        f"{_LANDMARKS}__labels__mutmut_7": _TAKE_CASTS,
        **{f"{_LANDMARKS}__labels__mutmut_{n}": _NO_NA_LEFT for n in (11, 12, 13)},
        **{f"{_LANDMARKS}__level_codes__mutmut_{n}": _STR_INFERRED for n in (5, 7)},
        **{f"{_LANDMARKS}__level_codes__mutmut_{n}": _MASKED_MISSING for n in (8, 10)},
    },
}
EQUIVALENT.update(LANDMARK_EQUIVALENT)


# Equivalent mutants of the data contract (features/contract.py), kept in a block of their own.
_CONTRACT = "dropout_risk.features.contract.x"
_PARSED_DTYPES = "pass 1 hands the schema each column in its dtype (string, float64, datetime64[ns]): the check is moot"
_FALSY = "pandera reads None as False (nullable, required): the same column rule"
_DEFAULT_ARG = "the argument's default is the value given (nullable=False, strict=False, keep='first')"
_FIRST_ASSIGNMENT = "the problem list is still empty there: = and += give the same list"
_INTEGER_NONE = "integer=None is falsy: parse_numeric's fractions stay allowed, as with integer=False"
_SCHEMA_COLUMNS = "the parsed frame holds only the schema's columns: strict=True finds no other column"
_ROW_FAILURES = "every failure case names a row: the parsed frames always have the schemas' columns and dtypes"
_ONE_FRAME = "failure_cases' columns are three columns of one frame: always the same length, strict or not"
_UNIQUE_IDS = "one key, the client id: tied only when duplicated, and then not ok (frames unusable); kind is unread"
_SHIFT_ALIGNED = "groupby(...).shift() returns values aligned to the rows whatever the group order"
_ROWLESS_FIRST = "a rowless problem comes from the early return (all rowless) or has no column: it still sorts first"
_LOWERCASE_AFTER = "a column-less problem sorts before the required-column ones either way: 'XXXX' < 'client_id' as ''"
_MISSING_FILL = "blank_to_na reads None as missing, as it reads '': the same NaT"
CONTRACT_EQUIVALENT: dict[str, dict[str, str]] = {
    "features/contract.py": {
        f"{_CONTRACT}ǁValidationResultǁsummary__mutmut_75": _NAN_TEXT,
        f"{_CONTRACT}__parse_sessions__mutmut_2": "the index is reset before: assigned columns bring the same",
        f"{_CONTRACT}__parse_sessions__mutmut_24": _FIRST_ASSIGNMENT,
        f"{_CONTRACT}__parse_sessions__mutmut_106": _INTEGER_NONE,
        f"{_CONTRACT}__parse_episodes__mutmut_10": _INTEGER_NONE,
        f"{_CONTRACT}__parse_ended_on__mutmut_7": _MISSING_FILL,
        **{f"{_CONTRACT}_sessions_schema__mutmut_{n}": _PARSED_DTYPES for n in (4, 6, 13, 29, 31, 38, 56)},
        **{f"{_CONTRACT}_sessions_schema__mutmut_{n}": _FALSY for n in (5, 15, 30, 41, 59)},
        **{f"{_CONTRACT}_sessions_schema__mutmut_{n}": _DEFAULT_ARG for n in (7, 18, 32, 75)},
        f"{_CONTRACT}_sessions_schema__mutmut_76": _SCHEMA_COLUMNS,
        **{f"{_CONTRACT}_episodes_schema__mutmut_{n}": _PARSED_DTYPES for n in (7, 11, 23, 40)},
        **{f"{_CONTRACT}_episodes_schema__mutmut_{n}": _FALSY for n in (8, 25, 43)},
        **{f"{_CONTRACT}_episodes_schema__mutmut_{n}": _DEFAULT_ARG for n in (4, 12, 28)},
        f"{_CONTRACT}__schema_problems__mutmut_15": _ROW_FAILURES,
        **{f"{_CONTRACT}__schema_problems__mutmut_{n}": _ONE_FRAME for n in (28, 32, 39)},
        **{f"{_CONTRACT}__session_order_problems__mutmut_{n}": _TWO_KEYS for n in (9, 11, 16, 17)},
        **{f"{_CONTRACT}__session_order_problems__mutmut_{n}": _SHIFT_ALIGNED for n in (20, 22, 25, 59, 61, 64)},
        f"{_CONTRACT}__session_order_problems__mutmut_31": _DEFAULT_ARG,
        f"{_CONTRACT}__session_order_problems__mutmut_38": _FIRST_ASSIGNMENT,
        **{f"{_CONTRACT}_validate_contract__mutmut_{n}": _TWO_KEYS for n in (96, 98, 103, 104)},
        **{f"{_CONTRACT}_validate_contract__mutmut_{n}": _UNIQUE_IDS for n in (135, 137, 140, 141)},
        f"{_CONTRACT}__order__mutmut_5": _ROWLESS_FIRST,
        f"{_CONTRACT}__order__mutmut_7": _LOWERCASE_AFTER,
    },
}
EQUIVALENT.update(CONTRACT_EQUIVALENT)
